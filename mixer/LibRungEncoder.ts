// One rung of a room's composite in one codec, encoded in the server process by FFmpeg's libraries
// (libav.ts): the canvas is copied once into the encoder's frame, scaled there to the rung's size
// if it is smaller, and encoded on libuv's threadpool, so the event loop (audio ticks, packets) never
// waits for an encode. A keyframe on request is the next frame's picture type set to I: that very
// frame is a keyframe, with no second encoder and no restart. An encoder that fails is opened again
// (its first frame is a keyframe) on the media plane's restart policy (restarts.ts).
//
// The input is the server's own canvas, never a client's bitstream, which is why this runs in
// process while the tile decoders do not.
import { EventEmitter } from "node:events";
import { logger } from "../telemetry/log.ts";
import { metrics } from "../telemetry/metrics.ts";
import { RungKeyframes } from "./keyframeLimiter.ts";
import { closeEncoder, encodeFrame, openEncoder, scaler, videoFrame, type EncodedPacket, type EncoderOpen, type Frame, type OpenedEncoder, type SoftwareScaleContext } from "./libav.ts";
import { Restarts, scheduleRestart } from "./restarts.ts";
import { emitFrame, VP8_CPU_USED, type EncodedFrame, type EncoderSettings, type Rung, type RungEncoding } from "./RungEncoder.ts";

const log = logger("composite-encoder");

/** H.264 level 3.1 (up to 1280x720 at 30 fps), as every hardware decoder of the last decade takes. */
const H264_LEVEL = 31;

/** The encoder settings of rung `r`, the same as the ffmpeg children's (RungEncoder.rungArgs). */
export function rungOpen(s: EncoderSettings, r: Rung): EncoderOpen {
  const base = { width: r.width, height: r.height, fps: s.fps, kbps: r.kbps, gop: s.keyframeIntervalS * s.fps };
  if (s.codec === "h264") {
    return {
      ...base,
      name: "libx264",
      level: H264_LEVEL,
      options: { preset: "ultrafast", tune: "zerolatency", profile: "baseline", "forced-idr": "1", "x264-params": "scenecut=0:sliced-threads=0" },
    };
  }
  return {
    ...base,
    name: "libvpx",
    options: { deadline: "realtime", "cpu-used": String(s.vp8CpuUsed ?? VP8_CPU_USED), "auto-alt-ref": "0", "lag-in-frames": "0", "error-resilient": "1" },
  };
}

/** Encoders open in this process now (each one's FFmpeg context, frames and scaler), all rooms. */
let openNow = 0;
export const openLibraryEncoders = (): number => openNow;

interface Open {
  enc: OpenedEncoder;
  /** Scaled rungs: the canvas is copied here and scaled into enc.frame. */
  canvas: Frame | undefined;
  sws: SoftwareScaleContext | undefined;
  /** Frames given to this encoder so far: the next frame's pts. */
  frames: number;
  /** The canvas tick of each frame on its way (pts → tick), until its packet comes out. */
  ticks: Map<number, number>;
}

export class LibRungEncoder extends EventEmitter<{ frame: [EncodedFrame] }> implements RungEncoding {
  /** It copies the canvas before encode() returns: the caller need not keep one for it. */
  readonly takesCanvasAtOnce = true;
  private open: Open | undefined;
  /** A frame is on the threadpool (scale and encode of the last canvas taken). */
  private busy = false;
  private readonly keyframes: RungKeyframes;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly restarts = new Restarts();
  private closed = false;
  private failNext = false;
  framesIn = 0;
  framesOut = 0;
  keyframesOut = 0;
  framesSkipped = 0;
  /** Encoders opened (the first included; one more per failure). */
  spawns = 0;

  constructor(
    private readonly s: EncoderSettings,
    readonly rung: number,
    private readonly r: Rung,
  ) {
    super();
    this.keyframes = new RungKeyframes(s.keyframeMinIntervalMs, rung, log);
    this.open = this.start();
  }

  private start(): Open {
    this.spawns++;
    metrics.encoderSpawns.inc();
    const enc = openEncoder(rungOpen(this.s, this.r));
    openNow++;
    metrics.libraryEncoders.set(openNow);
    const scaled = this.r.width !== this.s.width || this.r.height !== this.s.height;
    return {
      enc,
      canvas: scaled ? videoFrame(this.s.width, this.s.height) : undefined,
      sws: scaled ? scaler(this.s.width, this.s.height, this.r.width, this.r.height) : undefined,
      frames: 0,
      ticks: new Map(),
    };
  }

  encode(canvas: Buffer, tick: number, done: () => void): boolean {
    const o = this.open;
    if (this.closed || !o) {
      if (!this.closed) metrics.compositeFramesSkipped.inc({ reason: "encoder_restart" }); // it failed: another is opening
      done();
      return false;
    }
    if (this.busy) {
      // The last canvas is still being encoded: this one is left out (never queued behind it).
      this.framesSkipped++;
      metrics.compositeFramesSkipped.inc({ reason: "encoder_busy" });
      done();
      return false;
    }
    const into = o.canvas ?? o.enc.frame;
    into.makeWritable();
    into.fromBuffer(canvas);
    done();
    // Frames are numbered as given, one frame duration each, whatever ticks were left out before:
    // libvpx 1.15 overshoots its bitrate by a third when its timestamps have gaps (measured here).
    const pts = o.frames++;
    o.ticks.set(pts, tick);
    const keyframe = pts === 0 || this.keyframes.pending;
    this.keyframes.pending = false;
    this.framesIn++;
    this.busy = true;
    void this.run(o, pts, keyframe);
    return true;
  }

  private async run(o: Open, pts: number, keyframe: boolean): Promise<void> {
    let packets: EncodedPacket[] = [];
    try {
      if (this.failNext) {
        this.failNext = false;
        throw new Error("failure injected");
      }
      if (o.sws && o.canvas) {
        o.enc.frame.makeWritable();
        const r = await o.sws.scaleFrame(o.enc.frame, o.canvas);
        if (r < 0) throw new Error(`scale failed (${r})`);
      }
      o.enc.frame.pts = BigInt(pts);
      packets = await encodeFrame(o.enc, o.enc.frame, keyframe);
    } catch (err) {
      if (!this.closed && this.open === o) this.failed(o, err);
    } finally {
      this.busy = false;
      if (this.closed || this.open !== o) free(o);
    }
    if (this.closed || this.open !== o) return;
    for (const p of packets) {
      this.framesOut++;
      if (p.isKeyframe) {
        this.keyframesOut++;
        this.keyframes.limiter.noteKeyframe();
      }
      const tick = o.ticks.get(p.pts);
      o.ticks.delete(p.pts);
      if (tick !== undefined) emitFrame(this, { data: p.data, isKeyframe: p.isKeyframe, tick });
    }
  }

  /** The encoder failed: it is closed and another opened after the restart policy's delay. */
  private failed(o: Open, err: unknown): void {
    this.open = undefined;
    metrics.ffmpegRestarts.inc({ role: "composite-encoder" });
    const { timer, delayMs } = scheduleRestart(this.restarts, () => {
      this.restartTimer = undefined;
      if (this.closed) return;
      try {
        this.open = this.start();
      } catch (e) {
        this.failed(o, e);
      }
    });
    this.restartTimer = timer;
    if (delayMs === undefined) log.error("composite encoder keeps failing; this rung stops", { rung: this.rung, codec: this.s.codec ?? "vp8", error: String(err) });
    else log.warn("composite encoder failed; opening another", { rung: this.rung, codec: this.s.codec ?? "vp8", inMs: delayMs, error: String(err) });
  }

  get keyframeDue(): boolean {
    return this.keyframes.pending;
  }

  requestKeyframe(reason: string): void {
    this.keyframes.request(reason);
  }

  injectFailure(): void {
    this.failNext = true;
  }

  /** Closes once; an encode on the threadpool finishes first and its encoder is freed after it. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.keyframes.close();
    clearTimeout(this.restartTimer);
    const o = this.open;
    this.open = undefined;
    if (o && !this.busy) free(o);
    this.removeAllListeners();
  }
}

function free(o: Open): void {
  openNow--;
  metrics.libraryEncoders.set(openNow);
  closeEncoder(o.enc);
  o.canvas?.free();
  o.sws?.freeContext();
}
