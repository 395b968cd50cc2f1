// The two ffmpeg children of the audio path: an Opus decoder per speaking participant
// (Opus RTP payloads in Ogg pages in, 48 kHz mono s16le out) and an Opus encoder per
// listener (s16le mix-minus in, constant-bitrate raw Opus packets out).
import { EventEmitter } from "node:events";
import { FfmpegProcess, type FfmpegExit } from "./FfmpegProcess.ts";
import { OggOpusWriter, opusPacketSamples } from "./ogg.ts";
import { Restarts, scheduleRestart } from "./restarts.ts";

const RAW_IN = ["-probesize", "32", "-analyzeduration", "0", "-f", "s16le", "-ar", "48000", "-ac", "1", "-i", "pipe:0"];

export class OpusDecoder extends EventEmitter<{ pcm: [Buffer]; exit: [FfmpegExit] }> {
  private readonly proc: FfmpegProcess;
  private readonly ogg = new OggOpusWriter({ channels: 1 });
  private started = false;

  constructor(ffmpegPath: string) {
    super();
    this.proc = new FfmpegProcess(ffmpegPath, "audio-decoder", [
      "-probesize", "32", "-analyzeduration", "0", "-f", "ogg", "-i", "pipe:0",
      "-f", "s16le", "-ar", "48000", "-ac", "1", "-flush_packets", "1", "pipe:1",
    ]);
    this.proc.stdout.on("data", (d: Buffer) => this.emit("pcm", d));
    this.proc.on("exit", (e) => this.emit("exit", e));
  }

  decode(opusPacket: Buffer): void {
    if (!opusPacket.length) return;
    const samples = opusPacketSamples(opusPacket);
    if (!samples) return;
    if (!this.started) {
      this.started = true;
      this.proc.write(this.ogg.headers());
    }
    this.proc.write(this.ogg.packet(opusPacket, samples), 64 * 1024);
  }

  close(): void {
    this.proc.removeAllListeners("exit");
    this.proc.close();
  }
}

export class OpusEncoder extends EventEmitter<{ packet: [Buffer, number]; exit: [FfmpegExit] }> {
  private readonly proc: FfmpegProcess;
  private readonly packetBytes: number;
  private pending: Buffer = Buffer.alloc(0);

  constructor(ffmpegPath: string, kbps: number) {
    super();
    // Hard CBR: every 20 ms packet is exactly kbps*2.5 bytes, so raw packets can be cut from the
    // stream by size. (An Ogg muxer holds each page until the next one exists: +20 ms.)
    this.packetBytes = Math.floor((kbps * 1000) / 400); // libopus: bitrate * 20 ms / 8, integer division
    this.proc = new FfmpegProcess(ffmpegPath, "audio-encoder", [
      ...RAW_IN,
      "-c:a", "libopus", "-b:a", `${kbps}k`, "-vbr", "off", "-frame_duration", "20", "-application", "voip",
      "-map", "0:a", "-f", "data", "-flush_packets", "1", "pipe:1",
    ]);
    this.proc.stdout.on("data", (d: Buffer) => {
      let buf = this.pending.length ? Buffer.concat([this.pending, d]) : d;
      while (buf.length >= this.packetBytes) {
        const packet = Buffer.from(buf.subarray(0, this.packetBytes));
        buf = buf.subarray(this.packetBytes);
        this.emit("packet", packet, opusPacketSamples(packet));
      }
      this.pending = buf;
    });
    this.proc.on("exit", (e) => this.emit("exit", e));
  }

  /** One 20 ms block of mono s16 samples; dropped if the encoder is backed up (> 200 ms queued). */
  encode(pcm: Int16Array): boolean {
    // Copied: the mixer reuses its block for the next tick while this one may still sit in the pipe.
    return this.proc.write(Buffer.copyBytesFrom(pcm), 19200);
  }

  close(): void {
    this.proc.removeAllListeners("exit");
    this.proc.close();
  }
}

/**
 * An Opus encoder that remembers which mixer tick each block came from (libopus emits exactly
 * one packet per 20 ms block, in order) and replaces its ffmpeg child if it dies.
 */
export class TickedOpusEncoder extends EventEmitter<{ packet: [Buffer, number, number]; died: [] }> {
  private enc: OpusEncoder | undefined;
  private ticks: number[] = [];
  private closed = false;
  private readonly restarts = new Restarts();
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ffmpegPath: string,
    private readonly kbps: number,
  ) {
    super();
    this.start();
  }

  private start(): void {
    const enc = new OpusEncoder(this.ffmpegPath, this.kbps);
    this.enc = enc;
    this.ticks = [];
    enc.on("packet", (p, n) => {
      const tick = this.ticks.shift();
      if (tick !== undefined) this.emit("packet", p, n, tick);
    });
    enc.on("exit", () => {
      if (this.closed || this.enc !== enc) return;
      this.enc = undefined;
      this.emit("died");
      this.restartTimer = scheduleRestart(this.restarts, () => !this.closed && this.start()).timer;
    });
  }

  encode(pcm: Int16Array, tick: number): boolean {
    if (!this.enc?.encode(pcm)) return false;
    this.ticks.push(tick);
    return true;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.restartTimer);
    this.enc?.close();
  }
}
