// Records a room's composite as it is sent: the VP8 or H.264 frames the encoder already made (no second
// video encode) and the full audio mix (everyone) as plain PCM (no live audio encode either: Opus
// is made after the meeting, by post-processing), muxed live by one ffmpeg into Matroska with
// short clusters. ffmpeg writes each cluster when it closes, so a file cut off by kill -9 still
// plays up to its last ~0.5 s. A recorder child that dies is replaced by a new part file;
// finalization joins the parts.
import { EventEmitter } from "node:events";
import path from "node:path";
import { logger } from "../telemetry/log.ts";
import { metrics } from "../telemetry/metrics.ts";
import { SAMPLE_RATE, TICK_SAMPLES } from "./AudioMixer.ts";

const TICK_MS = (TICK_SAMPLES * 1000) / SAMPLE_RATE;
import type { EncodedFrame } from "./CompositeEncoder.ts";
import { FfmpegProcess } from "./FfmpegProcess.ts";
import type { VideoCodec } from "./CompositeEncoder.ts";
import { FlvWriter } from "./flv.ts";
import { ivfFileHeader, ivfFrame } from "./ivf.ts";
import { Restarts, scheduleRestart } from "./restarts.ts";

const log = logger("recorder");

/** Longest a cluster is held in ffmpeg's memory before it reaches the file, ms. */
export const CLUSTER_MS = 500;
/** A recorder pipe backed up by more than this drops media (and says so) instead of growing. */
const MAX_QUEUED_BYTES = 16 * 1024 * 1024;
/** Longest stall filled with silence (60 s); the pipe cap bounds it anyway. */
const MAX_SILENT_TICKS = 3000;

export interface RecorderSettings {
  ffmpegPath: string;
  width: number;
  height: number;
  fps: number;
  /** The composite's codec (default vp8): VP8 goes in as IVF, H.264 as FLV, both with exact timestamps. */
  codec?: VideoCodec;
  /** Folder the part files go to. */
  dir: string;
  /** When a composite tick was composed (performance.now() ms): audio is lined up with it. */
  tickTime: (tick: number) => number;
}

export function recorderArgs(s: RecorderSettings, file: string): string[] {
  return [
    "-thread_queue_size", "512", "-probesize", "32", "-analyzeduration", "0", "-f", s.codec === "h264" ? "flv" : "ivf", "-i", "pipe:3",
    "-thread_queue_size", "512", "-f", "s16le", "-ar", String(SAMPLE_RATE), "-ac", "1", "-i", "pipe:4",
    "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "pcm_s16le",
    "-f", "matroska", "-cluster_time_limit", String(CLUSTER_MS), "-flush_packets", "1", "-y", file,
  ];
}

export class Recorder extends EventEmitter<{ needKeyframe: []; part: [string] }> {
  private proc: FfmpegProcess | undefined;
  private partIndex = 0;
  /** Tick of the first frame written to the current part; -1 while waiting for a keyframe. */
  private tick0 = -1;
  private restart: NodeJS.Timeout | undefined;
  /** A recorder that keeps dying at once (disk full, bad path) is retried ever more slowly, never given up. */
  private readonly restarts = new Restarts({ windowMs: 10_000, limit: Infinity, baseMs: 200, maxMs: 10_000 });
  private stopping = false;
  readonly parts: string[] = [];
  /** Mix blocks (when their tick was due, how many ticks were skipped before each) held until the part's first keyframe, ≤ 1 s. */
  private early: { pcm: Buffer; due: number; skipped: number }[] = [];
  private flv: FlvWriter | undefined;
  videoFrames = 0;
  audioBlocks = 0;
  droppedWrites = 0;

  constructor(private readonly s: RecorderSettings) {
    super();
    this.startPart();
  }

  private startPart(): void {
    const name = `live-${String(++this.partIndex).padStart(3, "0")}.mkv`;
    const proc = new FfmpegProcess(this.s.ffmpegPath, "recorder", recorderArgs(this.s, path.join(this.s.dir, name)), 2);
    this.proc = proc;
    this.tick0 = -1;
    this.early = [];
    this.flv = undefined;
    this.parts.push(name);
    proc.on("exit", (e) => {
      if (e.expected || this.stopping || this.proc !== proc) return;
      metrics.ffmpegRestarts.inc({ role: "recorder" });
      this.proc = undefined;
      const { timer, delayMs } = scheduleRestart(this.restarts, () => this.startPart());
      this.restart = timer;
      log.warn("recorder died; continuing in a new part", { part: name, code: e.code, signal: e.signal, retryInMs: delayMs, stderr: e.stderrTail.trim() });
    });
    this.emit("part", name);
    // A part must begin with a keyframe: ask for one rather than wait for the periodic one.
    this.emit("needKeyframe");
  }

  /** True once the current part has its first keyframe (media is being written). */
  get writing(): boolean {
    return this.tick0 >= 0 && !!this.proc?.alive;
  }

  videoFrame(f: EncodedFrame): void {
    const proc = this.proc;
    if (!proc?.alive || this.stopping) return;
    if (this.tick0 < 0) {
      if (!f.isKeyframe) return;
      this.tick0 = f.tick;
      if (this.s.codec !== "h264") this.write(proc, 0, ivfFileHeader({ width: this.s.width, height: this.s.height, timebaseDen: this.s.fps }));
      else this.flv = new FlvWriter();
      if (this.write(proc, 0, this.container(f))) this.videoFrames++;
      // The keyframe was composed an encode's time ago: the audio mixed since then starts the
      // part's sound, so sound and picture begin at the same instant (lip sync). Both sides are
      // placed by their clocks' deadlines, not by when the event loop got to them, and ticks the
      // audio clock skipped meanwhile (a stall, often the very keyframe's spawn) become silence:
      // leaving them out started the sound up to ~170 ms early, ahead of the picture for good.
      const composedAt = this.s.tickTime(f.tick);
      for (const b of this.early) {
        if (b.due <= composedAt) continue;
        const silent = Math.min(b.skipped, Math.ceil((b.due - composedAt) / TICK_MS) - 1);
        if (silent > 0) this.write(proc, 1, Buffer.alloc(silent * TICK_SAMPLES * 2));
        if (this.write(proc, 1, b.pcm)) this.audioBlocks++;
      }
      this.early = [];
      return;
    }
    if (this.write(proc, 0, this.container(f))) this.videoFrames++;
  }

  /** The frame in the input's container, stamped with its tick since the part began. */
  private container(f: EncodedFrame): Buffer {
    const n = f.tick - this.tick0;
    return this.flv ? this.flv.frame(f.data, f.isKeyframe, Math.round((n * 1000) / this.s.fps)) : ivfFrame(f.data, n);
  }

  /** One 20 ms block of the full mix, due at `due`; `skipped` ticks the audio clock missed are written as silence. */
  audioBlock(pcm: Int16Array, skipped: number, due: number): void {
    const proc = this.proc;
    if (!proc?.alive || this.stopping) return;
    // The mixer reuses its block: copy it, the pipe holds on to what it is given.
    const copy = Buffer.allocUnsafe(pcm.byteLength);
    copy.set(new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength));
    if (this.tick0 < 0) {
      this.early.push({ pcm: copy, due, skipped });
      if (this.early.length > 50) this.early.shift();
      return;
    }
    // Silence for every tick the clock missed keeps the sound in step with the picture.
    if (skipped > 0) this.write(proc, 1, Buffer.alloc(Math.min(skipped, MAX_SILENT_TICKS) * TICK_SAMPLES * 2));
    if (this.write(proc, 1, copy)) this.audioBlocks++;
  }

  private write(proc: FfmpegProcess, input: 0 | 1, data: Buffer): boolean {
    const pipe = proc.extraInputs[input]!;
    if (!pipe.writable || pipe.writableLength > MAX_QUEUED_BYTES) {
      this.droppedWrites++;
      metrics.recorderDrops.inc();
      return false;
    }
    pipe.write(data);
    return true;
  }

  /** Ends the inputs and waits for ffmpeg to write its last cluster and the file's index. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restart);
    const proc = this.proc;
    if (!proc?.alive) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.end(10_000);
    await exited;
  }
}
