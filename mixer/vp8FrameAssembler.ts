// Reassembles video frames from RTP packets (VP8, RFC 7741, by default; H.264 with the format in
// h264Payload.ts): reorders within a window, waits a little for NACK retransmissions, and after
// an unrecoverable loss drops frames until the next keyframe (inter frames reference earlier
// frames), telling the owner to send a PLI.
import { Vp8RtpPayload } from "werift";

/** How one codec's RTP payload format marks frames: what the assembler needs to know of a packet. */
export interface PayloadFormat {
  /** start: first packet of a frame; key: first packet of a keyframe; payload: what to keep. Undefined = unusable packet. */
  describe(payload: Buffer): { start: boolean; key: boolean; payload: Buffer } | undefined;
  /** A whole frame from its packets' payloads, in order. */
  join(parts: Buffer[]): { data: Buffer; isKeyframe: boolean };
}

export const VP8_FORMAT: PayloadFormat = {
  describe(payload) {
    let desc: Vp8RtpPayload;
    try {
      desc = Vp8RtpPayload.deSerialize(payload);
    } catch {
      return undefined;
    }
    const start = desc.sBit === 1 && desc.pid === 0;
    return { start, key: start && desc.payload.length > 0 && (desc.payload[0]! & 1) === 0, payload: desc.payload };
  },
  join(parts) {
    const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    return { data, isKeyframe: (data[0]! & 1) === 0 };
  },
};

export interface Vp8Frame {
  data: Buffer;
  timestamp: number;
  isKeyframe: boolean;
}

interface Pkt {
  seq: number; // unwrapped
  timestamp: number;
  marker: boolean;
  start: boolean; // S=1 and partition 0: first packet of a frame
  key: boolean; // first packet of a keyframe
  payload: Buffer;
  arrivedAt: number;
}

export interface AssemblerOutput {
  frames: Vp8Frame[];
  /** Set when a loss could not be repaired: the sender must be asked for a keyframe. */
  keyframeNeeded: boolean;
  dropped: number;
}

export interface RtpLike {
  header: { sequenceNumber: number; timestamp: number; marker: boolean };
  payload: Buffer;
}

export class Vp8FrameAssembler {
  private packets = new Map<number, Pkt>();
  private nextSeq: number | undefined;
  private highest: number | undefined;
  private waitingForKeyframe = true;

  constructor(
    /** How long a hole may wait for a retransmission before it is given up. */
    private readonly maxWaitMs = 120,
    private readonly maxPackets = 1024,
    private readonly format: PayloadFormat = VP8_FORMAT,
  ) {}

  private unwrap(seq16: number): number {
    if (this.highest === undefined) return seq16;
    const base = this.highest - (this.highest & 0xffff);
    let seq = base + seq16;
    if (seq - this.highest > 0x8000) seq -= 0x10000;
    else if (this.highest - seq > 0x8000) seq += 0x10000;
    return seq;
  }

  push(rtp: RtpLike, now = performance.now()): AssemblerOutput {
    const out: AssemblerOutput = { frames: [], keyframeNeeded: false, dropped: 0 };
    if (rtp.payload.length === 0) return out; // padding-only packet
    const desc = this.format.describe(rtp.payload);
    if (!desc) return out;
    const seq = this.unwrap(rtp.header.sequenceNumber);
    if (this.nextSeq !== undefined && seq < this.nextSeq) return out; // late duplicate/retransmission
    this.highest = this.highest === undefined ? seq : Math.max(this.highest, seq);
    const { start, key } = desc;
    this.packets.set(seq, { seq, timestamp: rtp.header.timestamp, marker: rtp.header.marker, start, key, payload: desc.payload, arrivedAt: now });
    if (this.nextSeq === undefined && start && !key) out.keyframeNeeded = true; // nothing decodable before a keyframe
    this.drain(now, out);
    return out;
  }

  private drain(now: number, out: AssemblerOutput): void {
    for (;;) {
      if (this.nextSeq === undefined) {
        // Lock on at the first keyframe: packets of it may still arrive after a later inter frame's.
        const first = this.firstStartFrom(-Infinity, true);
        if (first === undefined) {
          if (this.packets.size >= this.maxPackets) out.dropped += this.forgetBefore(Infinity);
          break;
        }
        out.dropped += this.forgetBefore(first);
        this.nextSeq = first;
      }
      const frame = this.tryFrameAt(this.nextSeq);
      if (frame) {
        this.emit(frame.frame, out);
        this.forgetBefore(frame.end + 1);
        this.nextSeq = frame.end + 1;
        continue;
      }
      // Hole at nextSeq: give it maxWaitMs for a retransmission, or give up sooner if the buffer overflows.
      const oldest = this.oldestArrival();
      const overdue = oldest !== undefined && now - oldest > this.maxWaitMs;
      if (!overdue && this.packets.size < this.maxPackets) break;
      const next = this.firstStartFrom(this.nextSeq + 1);
      if (next === undefined) break;
      out.dropped += this.forgetBefore(next);
      this.nextSeq = next;
      if (!this.waitingForKeyframe) out.keyframeNeeded = true;
      this.waitingForKeyframe = true;
    }
  }

  private emit(frame: Vp8Frame, out: AssemblerOutput): void {
    if (this.waitingForKeyframe && !frame.isKeyframe) {
      out.dropped++;
      out.keyframeNeeded = true;
      return;
    }
    this.waitingForKeyframe = false;
    out.frames.push(frame);
  }

  /** A complete frame starting at seq (S bit, same timestamp, through the marker bit), if all packets are here. */
  private tryFrameAt(seq: number): { frame: Vp8Frame; end: number } | undefined {
    const first = this.packets.get(seq);
    if (!first) return undefined;
    if (!first.start) {
      // Not a frame start: a tail whose head was lost. Skip it like a hole.
      return undefined;
    }
    const parts: Buffer[] = [];
    for (let s = seq; ; s++) {
      const p = this.packets.get(s);
      if (!p || p.timestamp !== first.timestamp) return undefined;
      parts.push(p.payload);
      if (p.marker) return { frame: { ...this.format.join(parts), timestamp: first.timestamp }, end: s };
    }
  }

  private firstStartFrom(from: number, keyOnly = false): number | undefined {
    let best: number | undefined;
    for (const p of this.packets.values()) {
      if (p.start && (!keyOnly || p.key) && p.seq >= from && (best === undefined || p.seq < best)) best = p.seq;
    }
    return best;
  }

  private oldestArrival(): number | undefined {
    let oldest: number | undefined;
    for (const p of this.packets.values()) if (oldest === undefined || p.arrivedAt < oldest) oldest = p.arrivedAt;
    return oldest;
  }

  private forgetBefore(seq: number): number {
    let n = 0;
    for (const s of this.packets.keys()) {
      if (s < seq) {
        this.packets.delete(s);
        n++;
      }
    }
    return n;
  }
}
