// The audio path's Opus codecs inside the server process: libopus itself (the @evan/opus binding,
// native on Linux/macOS/Windows x64 and arm64, its WebAssembly build elsewhere) instead of an
// ffmpeg child per decoder and per encoder. A 20 ms mono block costs about 90 µs to encode and
// 16 µs to decode natively; through a child each block also cost a pipe write that wakes another
// process, a read back, and the child's own overhead (see README, "Opus in the server process").
import { createRequire } from "node:module";
import { EventEmitter } from "node:events";
import { Decoder, Encoder } from "@evan/opus";
import { logger } from "../telemetry/log.ts";
import { metrics } from "../telemetry/metrics.ts";
import { opusPacketSamples } from "./ogg.ts";

const log = logger("opus");
const SAMPLE_RATE = 48000;
const BLOCK_SAMPLES = 960; // 20 ms

/** Which libopus build was loaded: the binding's native addon, or its WebAssembly fallback. */
export const opusBuild: "native" | "wasm" = (() => {
  if (process.env.OPUS_FORCE_WASM) return "wasm";
  try {
    createRequire(import.meta.url)(`@evan/opus/node/${process.arch}-${process.platform}.node`);
    return "native";
  } catch {
    return "wasm";
  }
})();

/**
 * Frees a codec's libopus state now where the build allows it (WebAssembly: `drop`); the native
 * addon frees it when the object is collected.
 */
function release(codec: object | undefined): void {
  (codec as { drop?: () => void } | undefined)?.drop?.();
}

/**
 * Decodes one participant's Opus packets to 48 kHz mono samples as they arrive (`samples`,
 * synchronously).
 * A packet libopus rejects (a hostile or broken sender) is dropped and counted; the decoder goes on.
 */
export class InProcessOpusDecoder extends EventEmitter<{ samples: [Int16Array] }> {
  private dec: Decoder | undefined = new Decoder({ channels: 1, sample_rate: SAMPLE_RATE });
  private lastWarnAt = -Infinity;
  private errors = 0;

  decode(opusPacket: Buffer): void {
    if (!this.dec || !opusPacket.length) return;
    let pcm: Uint8Array;
    try {
      // A TOC that promises more than 120 ms is refused before libopus sees it.
      if (!opusPacketSamples(opusPacket)) throw new Error("Opus(InvalidPacket): bad frame count");
      pcm = this.dec.decode(opusPacket);
    } catch (e) {
      this.rejected(e as Error);
      return;
    }
    if (!pcm.length) return;
    // The binding decodes into one shared buffer: one copy out, straight into aligned samples.
    const samples = new Int16Array(pcm.length >> 1);
    new Uint8Array(samples.buffer).set(pcm.subarray(0, samples.length * 2));
    this.emit("samples", samples);
  }

  private rejected(e: Error): void {
    this.errors++;
    metrics.audioPacketsDropped.inc({ reason: "undecodable" });
    const now = performance.now();
    if (now - this.lastWarnAt > 5000) {
      this.lastWarnAt = now;
      log.warn("dropped Opus packets that could not be decoded", { count: this.errors, error: e.message });
      this.errors = 0;
    }
  }

  close(): void {
    release(this.dec);
    this.dec = undefined;
    this.removeAllListeners();
  }
}

/**
 * A mix-minus (or full-mix) encoder: one 20 ms block in, one Opus packet out at once, tagged with the
 * mixer tick it came from. voip, 20 ms, hard CBR, complexity 10 (ffmpeg's default for libopus), and
 * in-band FEC: each packet can carry a coarse copy of the one before, spent only as far as the loss
 * its listener reports (setPacketLoss; 0 spends nothing on it). CBR on purpose, and no DTX: packet
 * sizes that follow speech give away what is said (RFC 6562), and a listener counts on 50 packets
 * a second.
 */
export class InProcessOpusEncoder extends EventEmitter<{ packet: [Buffer, number, number]; died: [] }> {
  private enc: Encoder | undefined;

  constructor(kbps: number) {
    super();
    const enc = new Encoder({ channels: 1, sample_rate: SAMPLE_RATE, application: "voip" });
    enc.bitrate = kbps * 1000;
    enc.vbr = false;
    enc.complexity = 10;
    enc.inband_fec = true;
    enc.packet_loss = 0;
    this.enc = enc;
  }

  /** The loss its listener(s) report, in percent: libopus sizes the FEC it adds to it. */
  setPacketLoss(percent: number): void {
    const p = Math.max(0, Math.min(30, Math.round(percent)));
    if (this.enc && this.enc.packet_loss !== p) this.enc.packet_loss = p;
  }

  get packetLoss(): number {
    return this.enc?.packet_loss ?? 0;
  }

  /** Encodes `pcm` (960 samples) and emits its packet before returning; false once closed. */
  encode(pcm: Int16Array, tick: number): boolean {
    if (!this.enc || pcm.length !== BLOCK_SAMPLES) return false;
    let packet: Buffer;
    try {
      packet = Buffer.from(this.enc.encode(pcm)); // copied out of the binding's shared buffer
    } catch (e) {
      log.error("Opus encode failed; the block is skipped", { error: (e as Error).message });
      return false;
    }
    this.emit("packet", packet, BLOCK_SAMPLES, tick);
    return true;
  }

  close(): void {
    release(this.enc);
    this.enc = undefined;
    this.removeAllListeners();
  }
}
