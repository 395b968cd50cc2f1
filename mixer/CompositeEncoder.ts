// The encoder of a room's composite in one codec (VP8 or H.264), for every rung of the ladder in
// use: one ffmpeg child reads each canvas once, splits it, scales it down for the lower rungs and
// encodes each rung to its own pipe. So an extra rung costs its scale and encode, not a second
// copy of the canvas through Node and a pipe.
// ffmpeg cannot be told to emit a keyframe at runtime, so a warm standby child waits: it has
// encoded one black warm-up canvas (the codecs and the filter graph are initialised) and is set
// to make its next frame a keyframe. A keyframe request (rate-limited) switches the canvas to it,
// and its first real frames come out at once as keyframes, on every rung. The same switch
// replaces a child that dies, so the stream never stops, and brings in a new set of rungs: the
// standby is respawned with the new set and switched to once it is warm. A rung nobody takes any
// more is dropped only after SHRINK_AFTER_MS, so a receiver flapping between rungs restarts nothing.
import { EventEmitter } from "node:events";
import { logger } from "../telemetry/log.ts";
import { metrics } from "../telemetry/metrics.ts";
import { FfmpegProcess } from "./FfmpegProcess.ts";
import { avccToAnnexB, FlvReader } from "./flv.ts";
import { IvfReader } from "./ivf.ts";
import { KeyframeLimiter } from "./keyframeLimiter.ts";

const log = logger("composite-encoder");

export type VideoCodec = "vp8" | "h264";

export interface EncoderSettings {
  ffmpegPath: string;
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

/** The filter graph and outputs of a child encoding `rungs` (indices into the ladder), rung i to `pipes[i]`. */
function childArgs(s: EncoderSettings, ladder: readonly Rung[], rungs: readonly number[]): string[] {
  const { width, height, fps } = s;
  const input = ["-probesize", "32", "-analyzeduration", "0", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", `${width}x${height}`, "-r", String(fps), "-i", "pipe:0"];
  const pipe = (i: number) => (i === 0 ? "pipe:1" : `pipe:${i + 2}`);
  const scaled = (r: Rung) => r.width !== width || r.height !== height;
  if (rungs.length === 1) {
    const r = ladder[rungs[0]!]!;
    return [...input, ...(scaled(r) ? ["-vf", `scale=${r.width}:${r.height}:flags=fast_bilinear`] : []), ...codecArgs(s, r.kbps), pipe(0)];
  }
  // One split of the canvas; the smaller rungs scaled from it (the tiles are never scaled twice).
  const graph = [`[0:v]split=${rungs.length}${rungs.map((_, i) => `[s${i}]`).join("")}`];
  rungs.forEach((rung, i) => {
    const r = ladder[rung]!;
    graph.push(scaled(r) ? `[s${i}]scale=${r.width}:${r.height}:flags=fast_bilinear[o${i}]` : `[s${i}]null[o${i}]`);
  });
  return [
    // One filter thread: slice-threading a 2-way split and a small scale costs more than it saves.
    "-filter_complex_threads", "1",
    ...input, "-filter_complex", graph.join(";"),
    ...rungs.flatMap((rung, i) => ["-map", `[o${i}]`, ...codecArgs(s, ladder[rung]!.kbps), pipe(i)]),
  ];
}

/** ffmpeg arguments of the codec (realtime, one thread, a keyframe at frame 1 for the warm standby), up to the output. */
function codecArgs(s: EncoderSettings, kbps: number): string[] {
  const { fps, keyframeIntervalS } = s;
  const rate = ["-b:v", `${kbps}k`, "-maxrate", `${kbps}k`, "-bufsize", `${kbps}k`, "-g", String(keyframeIntervalS * fps), "-force_key_frames", "expr:eq(n,1)"];
  if (s.codec === "h264") {
    // Constrained baseline (what every hardware decoder takes), no B-frames, no lookahead.
    return [
      "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline", "-level", "3.1", "-threads", "1", ...rate,
      "-x264-params", "scenecut=0:sliced-threads=0", "-f", "flv", "-flush_packets", "1",
    ];
  }
  return [
    "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", String(s.vp8CpuUsed ?? VP8_CPU_USED), "-threads", "1", ...rate,
    "-auto-alt-ref", "0", "-lag-in-frames", "0", "-error-resilient", "1", "-f", "ivf", "-flush_packets", "1",
  ];
}

interface Child {
  proc: FfmpegProcess;
  /** The rungs it encodes, in the order of its outputs. */
  rungs: readonly number[];
  readers: FrameReader[];
  /** Tick of every canvas written, in order: output frame n of each rung came from ticks[n]. */
  ticks: number[];
  /** Frames out so far, per output. */
  out: number[];
  /** Its warm-up frame came out on every output: it can take over at once. */
  warm: boolean;
  spawnedAt: number;
}

export class CompositeEncoder extends EventEmitter<{ frame: [EncodedFrame & { rung: number }] }> {
  private active: Child | undefined;
  private standby: Child | undefined;
  /** Children switched away from, flushing their last frames before they exit. */
  private readonly retiring = new Set<Child>();
  private rungs: number[];
  private readonly limiter: KeyframeLimiter;
  private retry: NodeJS.Timeout | undefined;
  /** Switch to the standby at the next canvas (a keyframe, a new set of rungs or a dead child). */
  private switchPending: false | "now" | "when warm" = false;
  private shrink: NodeJS.Timeout | undefined;
  private readonly lastTickSent = new Map<number, number>();
  private closed = false;
  private readonly pool: Buffer[] = [];
  framesIn = 0;
  framesOut = 0;
  keyframesOut = 0;

  constructor(
    private readonly s: EncoderSettings,
    private readonly ladder: readonly Rung[],
    rungs: readonly number[],
  ) {
    super();
    this.limiter = new KeyframeLimiter(s.keyframeMinIntervalMs);
    this.rungs = normalize(rungs);
    this.active = this.spawn();
    this.standby = this.spawn();
  }

  /**
   * Encode `rungs` from now on: a standby for the new set starts, and the canvas moves to it once
   * it is warm. Its first frames are keyframes on every rung (a rung that just started needs one).
   */
  setRungs(rungs: readonly number[]): void {
    const next = normalize(rungs);
    if (this.closed || next.join() === this.rungs.join()) return;
    const before = this.rungs;
    this.rungs = next;
    clearTimeout(this.shrink);
    const running = this.active?.rungs ?? [];
    if (next.every((r) => running.includes(r))) {
      // A rung taken again while still encoded: its new receiver needs a keyframe to start on.
      if (next.some((r) => !before.includes(r))) this.requestKeyframe("rung taken again");
      // Only rungs dropped: the running child goes on (a dropped rung's frames are not taken) and
      // moves to the smaller set after a quiet spell, so a receiver that goes down and comes back
      // up costs no restart and no keyframe for the others.
      this.shrink = setTimeout(() => this.respawnStandby(), SHRINK_AFTER_MS);
      this.shrink.unref();
      return;
    }
    this.respawnStandby();
  }

  /** A standby encoding the wanted set; the canvas moves to it once it is warm. */
  private respawnStandby(): void {
    if (this.closed || this.active?.rungs.join() === this.rungs.join()) return;
    this.standby?.proc.close();
    this.standby = this.spawn();
    this.switchPending = "when warm"; // a fresh standby: switch once it is warm, or no picture meanwhile
  }

  private spawn(): Child {
    const rungs = this.rungs;
    const proc = new FfmpegProcess(this.s.ffmpegPath, "composite-encoder", childArgs(this.s, this.ladder, rungs), 0, rungs.length - 1);
    // Warm-up canvas: tick -1 is never sent, so its output is dropped.
    const child: Child = {
      proc, rungs, readers: rungs.map(() => (this.s.codec === "h264" ? h264Reader() : new IvfReader())), ticks: [-1], out: rungs.map(() => 0), warm: false, spawnedAt: performance.now(),
    };
    const { width, height } = this.s;
    proc.write(Buffer.alloc((width * height * 3) / 2, 16));
    [proc.stdout, ...proc.extraOutputs].forEach((pipe, i) => pipe.on("data", (chunk: Buffer) => this.onOutput(child, i, chunk)));
    proc.on("exit", (e) => {
      if (this.closed || e.expected) return;
      metrics.ffmpegRestarts.inc({ role: "composite-encoder" });
      if (this.standby === child) this.standby = this.spawn();
      if (this.active === child) {
        log.warn("composite encoder died; switching to standby", { stderr: e.stderrTail.slice(-300) });
        this.active = undefined;
        this.switchPending = "now";
      }
    });
    return child;
  }

  private onOutput(child: Child, output: number, chunk: Buffer): void {
    const rung = child.rungs[output]!;
    for (const f of child.readers[output]!.push(chunk)) {
      const tick = child.ticks[child.out[output]!++];
      if (tick === -1) child.warm = child.out.every((n) => n > 0);
      // After a switch the old child may still flush frames: never send a tick twice or backwards.
      if (tick === undefined || tick <= (this.lastTickSent.get(rung) ?? -1)) continue;
      this.lastTickSent.set(rung, tick);
      this.framesOut++;
      if (f.isKeyframe) {
        this.keyframesOut++;
        this.limiter.noteKeyframe();
      }
      this.emit("frame", { data: f.data, isKeyframe: f.isKeyframe, tick, rung });
    }
    // Ticks already answered on every output are not needed again.
    const done = Math.min(...child.out);
    if (done > 256) {
      child.ticks.splice(0, done);
      child.out = child.out.map((n) => n - done);
    }
  }

  /** Encodes one canvas. Skips (returns false) when the encoder is backed up by over 2 frames. */
  encode(canvas: Buffer, tick: number): boolean {
    if (this.closed) return false;
    // A dead child or a keyframe request switches at once (the standby has long been warm). A new set
    // of rungs waits until its fresh standby is warm — or has had a second to get there.
    const warm = (c: Child | undefined) => !!c && (c.warm || performance.now() - c.spawnedAt > 1000);
    if (!this.active || this.switchPending === "now" || (this.switchPending === "when warm" && warm(this.standby))) this.switchToStandby();
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

  /** A receiver asked for a keyframe (PLI/FIR or a new receiver): every rung gets one. */
  requestKeyframe(reason: string): void {
    if (this.closed) return;
    const r = this.limiter.request();
    if (r.forceNow) {
      metrics.keyframesForced.inc();
      log.debug("forcing composite keyframe", { reason });
      this.switchPending = "now";
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
    if (!old) return;
    // The old child flushes what it has (at most 500 ms) and goes; until then it is still ours to close.
    this.retiring.add(old);
    old.proc.once("exit", () => this.retiring.delete(old));
    old.proc.end(500);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    clearTimeout(this.shrink);
    for (const c of [this.active, this.standby, ...this.retiring]) c?.proc.close();
    this.retiring.clear();
    this.active = this.standby = undefined;
  }
}

/** How long a child keeps encoding rungs nobody takes any more before moving to the smaller set. */
const SHRINK_AFTER_MS = 10_000;

const normalize = (rungs: readonly number[]) => [...new Set(rungs)].sort((a, b) => a - b);
