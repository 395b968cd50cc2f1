// The encoder of a room's composite in one codec (VP8 or H.264), for every rung of the ladder in
// use: one encoder per rung (FFmpeg's libraries in process, LibRungEncoder; or with
// VIDEO_ENGINE=ffmpeg one ffmpeg child, RungEncoder), each fed each canvas. Rungs are independent:
// adding one opens its encoder and touches no other; dropping one closes only its own (after
// LINGER_MS, so a receiver that goes down and comes straight back restarts nothing); a keyframe
// request is one keyframe of the rung that asked, made by its running encoder.
import { EventEmitter } from "node:events";
import { LibRungEncoder } from "./LibRungEncoder.ts";
import { RungEncoder, type EncodedFrame, type EncoderSettings, type Rung, type RungEncoding } from "./RungEncoder.ts";

export { VP8_CPU_USED, type EncodedFrame, type EncoderSettings, type Rung, type VideoCodec, type VideoEngine } from "./RungEncoder.ts";

/** How long a rung nobody takes any more keeps encoding before its child stops. */
export const LINGER_MS = 5000;

export class CompositeEncoder extends EventEmitter<{ frame: [EncodedFrame & { rung: number }] }> {
  private readonly running = new Map<number, RungEncoding>();
  /** Rungs nobody wants any more, still encoding until their linger ends. */
  private readonly lingering = new Map<number, NodeJS.Timeout>();
  private wanted = new Set<number>();
  private closed = false;
  private stoppedSpawns = 0;
  /** Canvas copies handed to the children, reused once every child has taken its copy. */
  private readonly pool: Buffer[] = [];

  constructor(
    private readonly s: EncoderSettings,
    private readonly ladder: readonly Rung[],
    rungs: readonly number[],
  ) {
    super();
    this.setRungs(rungs);
  }

  /** Encode exactly `rungs` from now on; a new rung's first frame is a keyframe. */
  setRungs(rungs: readonly number[]): void {
    if (this.closed) return;
    this.wanted = new Set(rungs);
    for (const rung of this.wanted) {
      const linger = this.lingering.get(rung);
      if (linger) {
        // Taken again while still encoded: its new receiver needs a keyframe to start on.
        clearTimeout(linger);
        this.lingering.delete(rung);
        this.running.get(rung)?.requestKeyframe("rung taken again");
      }
      if (!this.running.has(rung)) this.start(rung);
    }
    for (const rung of this.running.keys()) {
      if (this.wanted.has(rung) || this.lingering.has(rung)) continue;
      const t = setTimeout(() => this.stop(rung), LINGER_MS);
      t.unref();
      this.lingering.set(rung, t);
    }
  }

  private start(rung: number): void {
    const r = this.ladder[rung]!;
    const e: RungEncoding = this.s.videoEngine === "ffmpeg" ? new RungEncoder(this.s, rung, r) : new LibRungEncoder(this.s, rung, r);
    e.on("frame", (f) => this.emit("frame", { ...f, rung }));
    this.running.set(rung, e);
  }

  private stop(rung: number): void {
    this.lingering.delete(rung);
    const e = this.running.get(rung);
    if (!e) return;
    this.stoppedSpawns += e.spawns;
    e.close();
    this.running.delete(rung);
  }

  /** Encodes one canvas on every running rung; true when at least one took it (a busy encoder skips it). */
  encode(canvas: Buffer, tick: number): boolean {
    if (this.closed || !this.running.size) return false;
    const later = [...this.running.values()].filter((e) => !e.takesCanvasAtOnce);
    let taken = false;
    const none = () => {};
    for (const e of this.running.values()) if (e.takesCanvasAtOnce) taken = e.encode(canvas, tick, none) || taken;
    if (!later.length) return taken;
    // The canvas is reused by the compositor: children that write it to a pipe get one copy, from a
    // small pool so 40 MB/s of fresh buffers does not drive V8 into back-to-back full GCs.
    const copy = this.pool.pop() ?? Buffer.allocUnsafe(canvas.length);
    canvas.copy(copy);
    let pending = later.length;
    const done = () => {
      if (--pending === 0 && this.pool.length < 4) this.pool.push(copy);
    };
    for (const e of later) taken = e.encode(copy, tick, done) || taken;
    return taken;
  }

  /** A keyframe of `rung` (rate-limited per rung), or of every rung when none is named. */
  requestKeyframe(reason: string, rung?: number): void {
    if (rung === undefined) for (const e of this.running.values()) e.requestKeyframe(reason);
    else this.running.get(rung)?.requestKeyframe(reason);
  }

  /** The running rungs' encoders (for tests and diagnostics: identity, counters, injected failures). */
  get rungEncoders(): ReadonlyMap<number, RungEncoding> {
    return this.running;
  }

  /** Some rung's next frame is a keyframe asked for. */
  get keyframeDue(): boolean {
    for (const e of this.running.values()) if (e.keyframeDue) return true;
    return false;
  }

  /** Encoders started for this codec so far (one per rung started, plus one per restart). */
  get spawns(): number {
    let n = this.stoppedSpawns;
    for (const e of this.running.values()) n += e.spawns;
    return n;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.lingering.values()) clearTimeout(t);
    this.lingering.clear();
    for (const e of this.running.values()) e.close();
    this.running.clear();
  }
}
