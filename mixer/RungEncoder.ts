// One rung of a room's composite in one codec: one ffmpeg child that reads the canvas (wrapped in
// Matroska, so each frame carries a timestamp), scales it to the rung's size if it is smaller, and
// encodes it. A keyframe on request is signalled in the next frame's timestamp (rawMatroska.ts):
// the running child makes that very frame a keyframe, so a receiver's PLI or a new receiver costs
// one larger frame of this rung, and nothing of any other rung, and no second child. A child that
// dies is replaced (its first frame is a keyframe) on the media plane's restart policy (restarts.ts).
// This is VIDEO_ENGINE=ffmpeg; the default encodes in process (LibRungEncoder.ts).
import { EventEmitter } from "node:events";
import { logger } from "../telemetry/log.ts";
import { metrics } from "../telemetry/metrics.ts";
import { FfmpegProcess } from "./FfmpegProcess.ts";
import { avccToAnnexB, FlvReader } from "./flv.ts";
import { IvfReader } from "./ivf.ts";
import { RungKeyframes } from "./keyframeLimiter.ts";
import { Restarts, scheduleRestart } from "./restarts.ts";
import { keyframeSignalArgs, matroskaFrameHeader, matroskaInputArgs, matroskaRawHeader, signalledTimestamp } from "./rawMatroska.ts";

const log = logger("composite-encoder");

export type VideoCodec = "vp8" | "h264";

/** Where the composite is encoded: FFmpeg's libraries in this process, or one ffmpeg child per rung. */
export type VideoEngine = "library" | "ffmpeg";

export interface EncoderSettings {
  ffmpegPath: string;
  /** Default library. */
  videoEngine?: VideoEngine;
  /** Default vp8. */
  codec?: VideoCodec;
  width: number;
  height: number;
  fps: number;
  kbps: number;
  keyframeIntervalS: number;
  keyframeMinIntervalMs: number;
  /** libvpx -cpu-used (default VP8_CPU_USED): negative is a fixed speed, positive adapts to the time left. */
  vp8CpuUsed?: number;
}

/**
 * libvpx's speed. A positive value adapts: it spends whatever CPU the frame's time leaves on quality,
 * so an idle server burns more. -8 is speed 8 always: on 10 s of 720p it took 1.5–2.1 CPU-s against
 * 2.9–3.4 at 8 (same bitrate, PSNR 37.2 against 37.8 dB), and 0.6–0.9 against 1.2–1.3 at 360p.
 */
export const VP8_CPU_USED = -8;

export interface EncodedFrame {
  /** A VP8 frame, or an H.264 access unit in Annex-B (SPS and PPS before every keyframe). */
  data: Buffer;
  isKeyframe: boolean;
  /** Canvas tick this frame was made from. */
  tick: number;
}

/** One rung of the ladder: rung 0 is the canvas size, lower rungs the canvas scaled down. */
export interface Rung {
  width: number;
  height: number;
  kbps: number;
}

/** One rung's encoder, whichever engine runs it. */
export interface RungEncoding extends EventEmitter<{ frame: [EncodedFrame] }> {
  readonly rung: number;
  /** It copies the canvas before encode() returns (else the caller keeps it until `done`). */
  readonly takesCanvasAtOnce: boolean;
  framesIn: number;
  framesOut: number;
  keyframesOut: number;
  framesSkipped: number;
  /** Encoders started (the first included; one more per failure). */
  spawns: number;
  /**
   * Encodes `canvas`, made at `tick`; `done` once the canvas may be reused. Skips it (false, and
   * `done` at once) when the encoder is still behind with earlier ones or is being replaced.
   */
  encode(canvas: Buffer, tick: number, done: () => void): boolean;
  /** Its next frame will be a keyframe (asked for, not sent yet). */
  readonly keyframeDue: boolean;
  /** A receiver of this rung lost the picture or is new: the next frame is a keyframe (rate-limited). */
  requestKeyframe(reason: string): void;
  /** Makes the encoder fail now, as a crash would (tests: the restart path, beside a live call). */
  injectFailure(): void;
  close(): void;
}

/**
 * Hands an encoded frame to the rung's listeners (the fan-out to its receivers). A listener that
 * throws loses this frame for its receivers, is counted and logged; it is not the encoder failing,
 * and it never reaches the event loop (uncaughtException would end every room).
 */
export function emitFrame(e: RungEncoding, f: EncodedFrame): void {
  try {
    e.emit("frame", f);
  } catch (err) {
    metrics.encoderListenerErrors.inc();
    log.error("composite frame fan-out threw", { rung: e.rung, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  }
}

/** The encoder's output container: IVF for VP8; FLV for H.264 (length-prefixed, so a frame is whole at once). */
interface FrameReader {
  push(chunk: Buffer): { data: Buffer; isKeyframe: boolean }[];
}

function h264Reader(): FrameReader {
  const flv = new FlvReader();
  return {
    push: (chunk) =>
      flv.push(chunk).map((f) => {
        const c = flv.config;
        const size = c?.naluLengthSize ?? 4;
        return { data: avccToAnnexB(f.data, size, f.isKeyframe && c ? [...c.sps, ...c.pps] : []), isKeyframe: f.isKeyframe };
      }),
  };
}

/** ffmpeg arguments of a child encoding the canvas at rung `r`: realtime, one thread, keyframes when signalled. */
export function rungArgs(s: EncoderSettings, r: Rung): string[] {
  const { fps, keyframeIntervalS } = s;
  const scale = r.width !== s.width || r.height !== s.height ? ["-vf", `scale=${r.width}:${r.height}:flags=fast_bilinear`] : [];
  const rate = ["-b:v", `${r.kbps}k`, "-maxrate", `${r.kbps}k`, "-bufsize", `${r.kbps}k`, "-g", String(keyframeIntervalS * fps)];
  const codec =
    s.codec === "h264"
      ? // Constrained baseline (what every hardware decoder takes), no B-frames, no lookahead; x264 is
        // told the frame rate itself (its time base is the signal's 1/100000 s).
        ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline", "-level", "3.1", "-threads", "1", "-forced-idr", "1",
          "-x264-params", `scenecut=0:sliced-threads=0:fps=${fps}`, ...rate, "-f", "flv", "-flush_packets", "1"]
      : ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", String(s.vp8CpuUsed ?? VP8_CPU_USED), "-threads", "1", ...rate,
          "-auto-alt-ref", "0", "-lag-in-frames", "0", "-error-resilient", "1", "-f", "ivf", "-flush_packets", "1"];
  return [...matroskaInputArgs(), ...keyframeSignalArgs(), ...scale, ...codec, "pipe:1"];
}

interface Child {
  proc: FfmpegProcess;
  reader: FrameReader;
  /** The canvas tick of every frame written, in order: output frame n came from ticks[n]. */
  ticks: number[];
  out: number;
  /** The tick its first frame came from (its timestamps count from there). */
  firstTick: number | undefined;
}

export class RungEncoder extends EventEmitter<{ frame: [EncodedFrame] }> implements RungEncoding {
  readonly takesCanvasAtOnce = false;
  private child: Child | undefined;
  private readonly keyframes: RungKeyframes;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly restarts = new Restarts();
  private readonly header: Buffer;
  private readonly frameBytes: number;
  private closed = false;
  framesIn = 0;
  framesOut = 0;
  keyframesOut = 0;
  /** Canvases not taken because the child was still behind with earlier ones. */
  framesSkipped = 0;
  /** Children started (the first included). */
  spawns = 0;

  constructor(
    private readonly s: EncoderSettings,
    readonly rung: number,
    private readonly r: Rung,
  ) {
    super();
    this.keyframes = new RungKeyframes(s.keyframeMinIntervalMs, rung, log);
    this.header = matroskaRawHeader(s.width, s.height);
    this.frameBytes = (s.width * s.height * 3) / 2;
    this.child = this.spawn();
  }

  private spawn(): Child {
    this.spawns++;
    metrics.encoderSpawns.inc();
    const proc = new FfmpegProcess(this.s.ffmpegPath, "composite-encoder", rungArgs(this.s, this.r));
    const child: Child = { proc, reader: this.s.codec === "h264" ? h264Reader() : new IvfReader(), ticks: [], out: 0, firstTick: undefined };
    proc.write(this.header);
    proc.stdout.on("data", (chunk: Buffer) => this.onOutput(child, chunk));
    proc.on("exit", (e) => {
      if (this.closed || e.expected || this.child !== child) return;
      this.child = undefined;
      metrics.ffmpegRestarts.inc({ role: "composite-encoder" });
      const { timer, delayMs } = scheduleRestart(this.restarts, () => {
        this.restartTimer = undefined;
        if (!this.closed) this.child = this.spawn();
      });
      this.restartTimer = timer;
      if (delayMs === undefined) log.error("composite encoder keeps dying; this rung stops", { rung: this.rung, codec: this.s.codec ?? "vp8", stderr: e.stderrTail.slice(-300) });
      else log.warn("composite encoder died; starting another", { rung: this.rung, codec: this.s.codec ?? "vp8", inMs: delayMs, stderr: e.stderrTail.slice(-300) });
    });
    return child;
  }

  private onOutput(child: Child, chunk: Buffer): void {
    for (const f of child.reader.push(chunk)) {
      const tick = child.ticks[child.out++];
      if (tick === undefined) continue;
      this.framesOut++;
      if (f.isKeyframe) {
        this.keyframesOut++;
        this.keyframes.limiter.noteKeyframe();
      }
      emitFrame(this, { data: f.data, isKeyframe: f.isKeyframe, tick });
    }
    if (child.out > 256) {
      child.ticks.splice(0, child.out);
      child.out = 0;
    }
  }

  /**
   * Encodes `canvas` (a copy the caller keeps until `done`), made at `tick`. Skips it (false, and
   * `done` at once) when the child is more than two canvases behind or is being replaced.
   */
  encode(canvas: Buffer, tick: number, done: () => void): boolean {
    const child = this.child;
    if (this.closed || !child || !child.proc.alive) {
      if (!this.closed) metrics.compositeFramesSkipped.inc({ reason: "encoder_restart" }); // its child died: one is starting
      done();
      return false;
    }
    const n = tick - (child.firstTick ?? tick);
    const keyframe = this.keyframes.pending && n > 0;
    if (!child.proc.write(matroskaFrameHeader(signalledTimestamp(n, this.s.fps, keyframe), this.frameBytes), this.frameBytes * 2)) {
      this.framesSkipped++;
      metrics.compositeFramesSkipped.inc({ reason: "encoder_busy" });
      done();
      return false;
    }
    child.proc.write(canvas, Infinity, done);
    child.firstTick ??= tick;
    child.ticks.push(tick);
    if (n === 0 || keyframe) this.keyframes.pending = false; // a child's first frame is a keyframe anyway
    this.framesIn++;
    return true;
  }

  /** Its next frame will be a keyframe (asked for, not sent yet). */
  get keyframeDue(): boolean {
    return this.keyframes.pending;
  }

  /** A receiver of this rung lost the picture or is new: the next frame is a keyframe (rate-limited). */
  requestKeyframe(reason: string): void {
    this.keyframes.request(reason);
  }

  injectFailure(): void {
    const pid = this.child?.proc.pid;
    if (pid !== undefined) process.kill(pid, "SIGKILL");
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.keyframes.close();
    clearTimeout(this.restartTimer);
    this.child?.proc.close();
    this.child = undefined;
  }
}
