// The room's audio mixer: one 20 ms clock, a jitter buffer per speaker, one int32 sum per
// tick, and for every listener that sum minus their own voice, encoded by their own encoder.
import { EventEmitter } from "node:events";
import { logger } from "../server/log.ts";
import { metrics } from "../server/metrics.ts";
import { MediaClock } from "./clock.ts";
import { OpusDecoder, OpusEncoder } from "./AudioCodecs.ts";
import { fullMix, mixMinus, sumInputs } from "./mixMinus.ts";
import { PcmBuffer } from "./pcmBuffer.ts";

const log = logger("audio-mixer");
export const SAMPLE_RATE = 48000;
export const TICK_SAMPLES = 960; // 20 ms

export interface AudioSettings {
  ffmpegPath: string;
  kbps: number;
}

interface Member {
  id: string;
  decoder: OpusDecoder | undefined;
  pcm: PcmBuffer;
  block: Int16Array;
  hasBlock: boolean;
  encoder: OpusEncoder | undefined;
  out: Int16Array;
  lastSeq: number | undefined;
  onPacket: (opus: Buffer, samples: number) => void;
  closed: boolean;
  muted: boolean;
}

export class AudioMixer extends EventEmitter<{ fullMix: [Int16Array] }> {
  private readonly members = new Map<string, Member>();
  private readonly sum = new Int32Array(TICK_SAMPLES);
  private readonly full = new Int16Array(TICK_SAMPLES);
  private readonly clock = new MediaClock(20, () => this.tick());
  ticks = 0;

  constructor(private readonly s: AudioSettings) {
    super();
    this.clock.begin();
  }

  /** Adds a participant: a speaker (its Opus in) and a listener (its mix-minus out, via onPacket). */
  add(id: string, onPacket: (opus: Buffer, samples: number) => void): void {
    const m: Member = {
      id, decoder: undefined, pcm: new PcmBuffer(), block: new Int16Array(TICK_SAMPLES), hasBlock: false,
      encoder: undefined, out: new Int16Array(TICK_SAMPLES), lastSeq: undefined, onPacket, closed: false, muted: false,
    };
    this.members.set(id, m);
    this.startEncoder(m);
  }

  private startEncoder(m: Member): void {
    const enc = new OpusEncoder(this.s.ffmpegPath, this.s.kbps);
    m.encoder = enc;
    enc.on("packet", (p, n) => m.onPacket(p, n));
    enc.on("exit", () => {
      if (m.closed) return;
      metrics.ffmpegRestarts.inc({ role: "audio-encoder" });
      log.warn("audio encoder died; replacing it", { participant: m.id });
      setTimeout(() => !m.closed && this.startEncoder(m), 100).unref();
    });
  }

  private startDecoder(m: Member): OpusDecoder {
    const dec = new OpusDecoder(this.s.ffmpegPath);
    m.decoder = dec;
    dec.on("pcm", (d) => m.pcm.pushBytes(d));
    dec.on("exit", () => {
      if (m.closed) return;
      metrics.ffmpegRestarts.inc({ role: "audio-decoder" });
      log.warn("audio decoder died; the next packet starts a new one", { participant: m.id });
      if (m.decoder === dec) m.decoder = undefined;
    });
    return dec;
  }

  /** An Opus RTP packet from participant `id`. Late (reordered) packets are dropped. */
  pushRtp(id: string, rtp: { header: { sequenceNumber: number }; payload: Buffer }): void {
    const m = this.members.get(id);
    if (!m || m.closed) return;
    const seq = rtp.header.sequenceNumber;
    if (m.lastSeq !== undefined) {
      const delta = (seq - m.lastSeq + 0x10000) & 0xffff;
      if (delta === 0 || delta > 0x8000) return;
    }
    m.lastSeq = seq;
    (m.decoder ?? this.startDecoder(m)).decode(rtp.payload);
  }

  setMuted(id: string, muted: boolean): void {
    const m = this.members.get(id);
    if (m) m.muted = muted;
  }

  remove(id: string): void {
    const m = this.members.get(id);
    if (!m) return;
    m.closed = true;
    m.decoder?.close();
    m.encoder?.close();
    this.members.delete(id);
  }

  private tick(): void {
    this.ticks++;
    const blocks: (Int16Array | undefined)[] = [];
    for (const m of this.members.values()) {
      m.hasBlock = m.pcm.take(m.block) && !m.muted;
      if (!m.hasBlock && m.decoder) metrics.audioUnderruns.inc();
      blocks.push(m.hasBlock ? m.block : undefined);
    }
    sumInputs(blocks, this.sum);
    for (const m of this.members.values()) {
      mixMinus(this.sum, m.hasBlock ? m.block : undefined, m.out);
      m.encoder?.encode(m.out);
    }
    if (this.listenerCount("fullMix")) {
      fullMix(this.sum, this.full);
      this.emit("fullMix", this.full);
    }
  }

  close(): void {
    this.clock.stop();
    for (const id of [...this.members.keys()]) this.remove(id);
  }
}
