// The one VP8 encoder of a room's composite. ffmpeg cannot be told to emit a keyframe at
// runtime, so a warm standby child waits: it has encoded one black warm-up canvas (libvpx and
// the filter graph are initialised) and is set to make its next frame a keyframe. A keyframe
// request (rate-limited) switches the canvas to it, and its first real frame comes out at
// once as a keyframe. The same switch replaces a child that dies, so the stream never stops.
import { EventEmitter } from "node:events";
import { logger } from "../server/log.ts";
import { metrics } from "../server/metrics.ts";
import { FfmpegProcess } from "./FfmpegProcess.ts";
import { IvfReader } from "./ivf.ts";
import { KeyframeLimiter } from "./keyframeLimiter.ts";

const log = logger("composite-encoder");

export interface EncoderSettings {
  ffmpegPath: string;
  width: number;
  height: number;
  fps: number;
  kbps: number;
  keyframeIntervalS: number;
  keyframeMinIntervalMs: number;
}

export interface EncodedFrame {
  data: Buffer;
  isKeyframe: boolean;
  /** Canvas tick this frame was made from. */
  tick: number;
}

interface Child {
  proc: FfmpegProcess;
  reader: IvfReader;
  /** Tick of every canvas written, in order: encoder output frame n came from ticks[n]. */
  ticks: number[];
  out: number;
}

export class CompositeEncoder extends EventEmitter<{ frame: [EncodedFrame] }> {
  private active: Child | undefined;
  private standby: Child | undefined;
  private readonly limiter: KeyframeLimiter;
  private retry: NodeJS.Timeout | undefined;
  private switchPending = false;
  private lastTickSent = -1;
  private closed = false;
  private readonly pool: Buffer[] = [];
  framesIn = 0;
  framesOut = 0;
  keyframesOut = 0;

  constructor(private readonly s: EncoderSettings) {
    super();
    this.limiter = new KeyframeLimiter(s.keyframeMinIntervalMs);
    this.active = this.spawn();
    this.standby = this.spawn();
  }

  private spawn(): Child {
    const { width, height, fps, kbps, keyframeIntervalS } = this.s;
    const proc = new FfmpegProcess(this.s.ffmpegPath, "composite-encoder", [
      "-probesize", "32", "-analyzeduration", "0",
      "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", `${width}x${height}`, "-r", String(fps), "-i", "pipe:0",
      "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-threads", "1",
      "-b:v", `${kbps}k`, "-maxrate", `${kbps}k`, "-bufsize", `${kbps}k`,
      "-g", String(keyframeIntervalS * fps), "-force_key_frames", "expr:eq(n,1)", "-auto-alt-ref", "0", "-lag-in-frames", "0", "-error-resilient", "1",
      "-f", "ivf", "-flush_packets", "1", "pipe:1",
    ]);
    // Warm-up canvas: tick -1 is never sent, so its output is dropped.
    const child: Child = { proc, reader: new IvfReader(), ticks: [-1], out: 0 };
    proc.write(Buffer.alloc((width * height * 3) / 2, 16));
    proc.stdout.on("data", (chunk: Buffer) => this.onOutput(child, chunk));
    proc.on("exit", (e) => {
      if (this.closed || e.expected) return;
      metrics.ffmpegRestarts.inc({ role: "composite-encoder" });
      if (this.standby === child) this.standby = this.spawn();
      if (this.active === child) {
        log.warn("composite encoder died; switching to standby", { stderr: e.stderrTail.slice(-300) });
        this.active = undefined;
        this.switchPending = true;
      }
    });
    return child;
  }

  private onOutput(child: Child, chunk: Buffer): void {
    for (const f of child.reader.push(chunk)) {
      const tick = child.ticks[child.out++];
      // After a switch the old child may still flush frames: never send a tick twice or backwards.
      if (tick === undefined || tick <= this.lastTickSent) continue;
      this.lastTickSent = tick;
      this.framesOut++;
      if (f.isKeyframe) {
        this.keyframesOut++;
        this.limiter.noteKeyframe();
      }
      this.emit("frame", { data: f.data, isKeyframe: f.isKeyframe, tick });
    }
    // Ticks already answered are not needed again.
    if (child.out > 256) {
      child.ticks.splice(0, child.out);
      child.out = 0;
    }
  }

  /** Encodes one canvas. Skips (returns false) when the encoder is backed up by over 2 frames. */
  encode(canvas: Buffer, tick: number): boolean {
    if (this.closed) return false;
    if (this.switchPending || !this.active) this.switchToStandby();
    const child = this.active;
    if (!child) return false;
    // The canvas is reused by the compositor: the pipe gets a copy, from a small pool so 40 MB/s
    // of fresh buffers does not drive V8 into back-to-back full GCs.
    const copy = this.pool.pop() ?? Buffer.allocUnsafe(canvas.length);
    canvas.copy(copy);
    if (!child.proc.write(copy, canvas.length * 2, () => this.pool.length < 4 && this.pool.push(copy))) {
      this.pool.push(copy);
      return false;
    }
    child.ticks.push(tick);
    this.framesIn++;
    return true;
  }

  /** A receiver asked for a keyframe (PLI/FIR or a new receiver). */
  requestKeyframe(reason: string): void {
    if (this.closed) return;
    const r = this.limiter.request();
    if (r.forceNow) {
      metrics.keyframesForced.inc();
      log.debug("forcing composite keyframe", { reason });
      this.switchPending = true;
      return;
    }
    metrics.keyframeRequestsLimited.inc();
    if (!this.retry) {
      this.retry = setTimeout(() => {
        this.retry = undefined;
        if (this.limiter.hasPending) this.requestKeyframe(`${reason} (deferred)`);
      }, r.retryInMs + 1);
      this.retry.unref();
    }
  }

  private switchToStandby(): void {
    this.switchPending = false;
    const old = this.active;
    this.active = this.standby ?? this.spawn();
    this.standby = this.spawn();
    old?.proc.end(500);
  }

  close(): void {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.active?.proc.close();
    this.standby?.proc.close();
    this.active = this.standby = undefined;
  }
}
