// The composite's send path, made lean (the "media workers" issue, part 2). Every receiver of an
// output gets the same packet. werift's RTCRtpSender.sendRtp would, for each receiver and packet:
// clone the packet, rebuild and sort its header extensions, serialize the header bit by bit, build
// the SRTP IV with allocating writers, concatenate, and go down six async functions (a promise
// each) to the socket. Here a receiver's header is a template made once (its SSRC, payload type
// and MID extension) in which only the marker, sequence number and timestamp are written per
// packet; SRTP is done with werift's own session keys and rollover state (both profiles werift
// negotiates: AEAD_AES_128_GCM and AES_CM_128_HMAC_SHA1_80, RFC 7714 / RFC 3711), byte for byte
// what werift would send; and the datagram goes to the selected pair as werift would send it.
//
// werift's sender stays the source of truth: its sequence and timestamp continuity (replaceRTP),
// the counters and clock pair its sender reports carry, and its retransmission cache (what a NACK
// resends, through werift's own path and the server's retransmission budget). Whatever this does
// not handle (header extensions other than the MID, RED, pending RTP, a packet with extensions,
// padding or CSRCs, a connection not up yet) goes through werift as before: `send` says so.
import { createCipheriv, createHmac } from "node:crypto";
import { ntpTime, type RTCRtpSender, type RtpPacket } from "werift";
import { addCollector, metrics } from "../telemetry/metrics.ts";

const SDES_MID = "urn:ietf:params:rtp-hdrext:sdes:mid";
/** werift's RTP_HISTORY_SIZE: how many sent packets its sender keeps for NACKs. */
const HISTORY = 128;

/** The parts of werift 0.25.2's RTCRtpSender (and what hangs off it) this reads and keeps up to date. */
interface WeriftSender {
  stopped: boolean;
  pendingRtpEnabled: boolean;
  rtpContinuityPending: boolean;
  redRedundantPayloadType?: number;
  codec?: { payloadType: number };
  ssrc: number;
  mid?: string;
  rtpStreamId?: string;
  repairedRtpStreamId?: string;
  headerExtensions: { uri: string; id: number }[];
  seqOffset: number;
  timestampOffset: number;
  sequenceNumber?: number;
  timestamp?: number;
  rtpTimestamp: number;
  ntpTimestamp: bigint;
  octetCount: number;
  packetCount: number;
  headerBytesSent: number;
  rtpCache: unknown[];
  rtcpRunning: boolean;
  runRtcp(): Promise<void>;
  dtlsTransport?: {
    state: string;
    bytesSent: number;
    packetsSent: number;
    srtp?: { localContext?: SrtpContext };
    iceTransport?: { connection?: { state: string; nominated?: Pair } };
  };
}
interface Pair {
  remoteAddr: [string, number];
  packetsSent: number;
  bytesSent: number;
  protocol: { type?: string; sendData(d: Buffer, a: [string, number]): Promise<void>; transport?: { closed?: boolean; send(d: Buffer, a: [string, number]): Promise<void> } };
}
interface SrtpContext {
  cipher: { srtpSessionKey: Buffer; srtpSessionSalt: Buffer; aeadAuthTagLen?: number; srtpSessionAuthTag?: Buffer; authTagLength?: number };
  getSrtpSsrcState(ssrc: number): { rolloverCounter: number };
  updateRolloverCount(seq: number, s: { rolloverCounter: number }): void;
}

/**
 * What werift's retransmission cache holds for a packet sent here: to werift's NACK handler both
 * the packet and its header (it re-encrypts `payload` under `header`, as for its own packets).
 */
class SentPacket {
  constructor(
    private readonly sent: Buffer, // the datagram as sent: its header is in the clear
    readonly serializeSize: number, // the header's length
    readonly payload: Buffer,
    readonly sequenceNumber: number,
    readonly ssrc: number,
  ) {}
  get header(): this {
    return this;
  }
  get payloadOffset(): number {
    return this.serializeSize;
  }
  get extensions(): [] {
    return [];
  }
  serialize(): Buffer {
    return Buffer.from(this.sent.subarray(0, this.serializeSize));
  }
}

/** The NTP time for sender reports, read once per millisecond (a BigInt each; thousands of packets a second share it). */
let ntpAtMs = -1;
let ntpNow = 0n;
function ntpForReports(): bigint {
  const ms = Math.floor(performance.now());
  if (ms !== ntpAtMs) {
    ntpAtMs = ms;
    ntpNow = ntpTime();
  }
  return ntpNow;
}

const noop = () => {};

/** Packets by path, all senders of this process; /metrics reads them at each scrape (a per-packet labelled inc costs more than the send saves). */
const totals = { lean: 0, werift: 0, not_connected: 0 };
const reported = { ...totals };
addCollector(() => {
  for (const path of ["lean", "werift", "not_connected"] as const) {
    if (totals[path] > reported[path]) metrics.rtpSent.inc({ path }, totals[path] - reported[path]);
    reported[path] = totals[path];
  }
});
/** Counts a packet werift's own sender sent (RTP_SENDER=werift, or one the lean path declined). */
export const countWeriftSend = () => void totals.werift++;

export class LeanSender {
  private header: Buffer | undefined;
  private made = { pt: -1, ssrc: -1, mid: "" as string | undefined, midId: -1 };
  /** Packets sent here, and handed to werift instead (for the benchmark and tests). */
  sent = 0;
  declined = 0;

  constructor(private readonly sender: RTCRtpSender) {}

  /** Sends `p` on the sender (or drops it, counted, where werift would: no connection yet); false if werift must send it (the caller then does). */
  send(p: RtpPacket): boolean {
    const s = this.sender as unknown as WeriftSender;
    const h = p.header;
    const dtls = s.dtlsTransport;
    const ctx = dtls?.srtp?.localContext;
    const conn = dtls?.iceTransport?.connection;
    const pair = conn?.nominated;
    if (!s.pendingRtpEnabled && (s.stopped || !s.codec || dtls?.state !== "connected")) {
      // werift would drop it too (its canSendRtp): the connection is not up yet, or closed.
      totals.not_connected++;
      return true;
    }
    if (s.pendingRtpEnabled || s.rtpContinuityPending || s.redRedundantPayloadType !== undefined || !s.codec
      || h.extensions.length || h.padding || h.csrc.length || !dtls || !ctx || !pair || conn!.state === "closed" || conn!.state === "failed") {
      this.declined++;
      return false;
    }
    const header = this.template(s, s.codec.payloadType);
    if (!header) {
      this.declined++;
      return false;
    }
    const seq = (h.sequenceNumber + s.seqOffset) & 0xffff;
    const ts = (h.timestamp + s.timestampOffset) >>> 0;
    header[1] = (h.marker ? 0x80 : 0) | s.codec.payloadType;
    header.writeUInt16BE(seq, 2);
    header.writeUInt32BE(ts, 4);
    const roc = ctx.getSrtpSsrcState(s.ssrc);
    ctx.updateRolloverCount(seq, roc);
    const out = protect(ctx.cipher, header, p.payload, s.ssrc, roc.rolloverCounter, seq);
    if (!out) {
      this.declined++;
      return false;
    }
    // What werift's dispatchRtp keeps: continuity, the sender report's clock pair and counts, the NACK cache.
    s.sequenceNumber = seq;
    s.timestamp = ts;
    s.rtpTimestamp = ts;
    s.ntpTimestamp = ntpForReports();
    s.octetCount += p.payload.length;
    s.headerBytesSent += header.length;
    s.packetCount = (s.packetCount + 1) >>> 0;
    s.rtpCache[seq % HISTORY] = new SentPacket(out, header.length, p.payload, seq, s.ssrc);
    dtls.bytesSent += out.length;
    dtls.packetsSent++;
    pair.packetsSent++;
    pair.bytesSent += out.length;
    const proto = pair.protocol;
    if (proto.type === "stun" && proto.transport) {
      if (!proto.transport.closed) proto.transport.send(out, pair.remoteAddr).catch(noop);
    } else proto.sendData(out, pair.remoteAddr).catch(noop);
    if (!s.rtcpRunning) void s.runRtcp();
    this.sent++;
    totals.lean++;
    return true;
  }

  /** The receiver's header with everything but marker, sequence number and timestamp in place; undefined if werift would add more. */
  private template(s: WeriftSender, pt: number): Buffer | undefined {
    let midId = -1;
    for (const e of s.headerExtensions) {
      if (e.uri === SDES_MID) midId = e.id;
      else return undefined; // transport-cc, abs-send-time, RIDs: werift's own path writes them
    }
    const mid = midId >= 0 ? s.mid : undefined;
    if (s.rtpStreamId || s.repairedRtpStreamId) return undefined;
    const m = this.made;
    if (this.header && m.pt === pt && m.ssrc === s.ssrc && m.mid === mid && m.midId === midId) return this.header;
    if (mid !== undefined && (!mid.length || Buffer.byteLength(mid) > 16 || midId < 1 || midId > 14)) return undefined;
    const midBytes = mid ? Buffer.from(mid) : undefined;
    const extWords = midBytes ? Math.ceil((1 + midBytes.length) / 4) : 0;
    const b = Buffer.alloc(12 + (midBytes ? 4 + extWords * 4 : 0));
    b[0] = 0x80 | (midBytes ? 0x10 : 0);
    b[1] = pt;
    b.writeUInt32BE(s.ssrc >>> 0, 8);
    if (midBytes) {
      b.writeUInt16BE(0xbede, 12); // RFC 8285 one-byte elements
      b.writeUInt16BE(extWords, 14);
      b[16] = (midId << 4) | (midBytes.length - 1);
      midBytes.copy(b, 17);
    }
    this.header = b;
    this.made = { pt, ssrc: s.ssrc, mid, midId };
    return b;
  }
}

// Scratch for IVs and the ROC: node:crypto copies them when it makes the cipher or takes the update.
const iv12 = Buffer.alloc(12);
const counter16 = Buffer.alloc(16);
const roc4 = Buffer.alloc(4);

/** SRTP-protects one packet (header in the clear, payload encrypted, tag appended); undefined for a cipher this does not know. */
export function protect(c: SrtpContext["cipher"], header: Buffer, payload: Buffer, ssrc: number, roc: number, seq: number): Buffer | undefined {
  const salt = c.srtpSessionSalt;
  if (c.aeadAuthTagLen === 16) {
    // RFC 7714 §8.1: IV = (0x0000 || SSRC || ROC || SEQ) XOR salt; the header is the AAD.
    const iv = iv12;
    iv.writeUInt16BE(0, 0);
    iv.writeUInt32BE(ssrc >>> 0, 2);
    iv.writeUInt32BE(roc >>> 0, 6);
    iv.writeUInt16BE(seq, 10);
    for (let i = 0; i < 12; i++) iv[i]! ^= salt[i]!;
    const cipher = createCipheriv("aes-128-gcm", c.srtpSessionKey, iv);
    cipher.setAAD(header);
    const enc = cipher.update(payload);
    cipher.final();
    const tag = cipher.getAuthTag();
    const out = Buffer.allocUnsafe(header.length + enc.length + tag.length);
    header.copy(out, 0);
    enc.copy(out, header.length);
    tag.copy(out, header.length + enc.length);
    return out;
  }
  if (c.srtpSessionAuthTag && c.authTagLength === 10) {
    // RFC 3711 §4.1.1: counter = (SSRC << 64 | index << 16) XOR salt; HMAC-SHA1 over header, payload and ROC, 80 bits.
    const counter = counter16;
    counter.writeUInt32BE(0, 0);
    counter.writeUInt32BE(ssrc >>> 0, 4);
    counter.writeUInt32BE(roc >>> 0, 8);
    counter.writeUInt16BE(seq, 12);
    counter.writeUInt16BE(0, 14);
    for (let i = 0; i < salt.length; i++) counter[i]! ^= salt[i]!;
    const enc = createCipheriv("aes-128-ctr", c.srtpSessionKey, counter).update(payload);
    roc4.writeUInt32BE(roc >>> 0);
    const tag = createHmac("sha1", c.srtpSessionAuthTag).update(header).update(enc).update(roc4).digest();
    const out = Buffer.allocUnsafe(header.length + enc.length + 10);
    header.copy(out, 0);
    enc.copy(out, header.length);
    tag.copy(out, header.length + enc.length, 0, 10);
    return out;
  }
  return undefined;
}
