// One participant's camera as the compositor sees it: a "latest frame" slot fed by a tile
// decoder. Resizing (layout change) or a dead decoder is handled make-before-break: a new
// decoder starts at the next keyframe while the old one keeps the tile alive, so the
// composite never waits for this input.
import { logger } from "../telemetry/log.ts";
import { metrics } from "../telemetry/metrics.ts";
import type { VideoCodec } from "./CompositeEncoder.ts";
import type { DecodeGate } from "./decodeBudget.ts";
import { h264FrameSize, vp8KeyframeSize } from "./frameSize.ts";
import { H264_FORMAT } from "./h264Payload.ts";
import { spawnTurn } from "./spawnPacer.ts";
import { TileDecoder } from "./TileDecoder.ts";
import { Vp8FrameAssembler, type RtpLike } from "./vp8FrameAssembler.ts";
import { Restarts, scheduleRestart } from "./restarts.ts";

const log = logger("video-input");

export interface TileFrame {
  data: Buffer;
  width: number;
  height: number;
  /** performance.now() when it was decoded. */
  at: number;
  seq: number;
}

export class VideoInput {
  private readonly assembler: Vp8FrameAssembler;
  private active: TileDecoder | undefined;
  private pending: TileDecoder | undefined;
  private want: { w: number; h: number } | undefined;
  /** Its decoder children's deaths (restarts.ts): a decoder that keeps dying is not started again until the tile changes. */
  private readonly restarts = new Restarts();
  private restartTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private seq = 0;
  /** The newest decoded tile, or undefined before the first one. */
  latest: TileFrame | undefined;
  /** The participant turned its camera off: show the placeholder without waiting for the stall timeout. */
  cameraOff = false;
  /** performance.now() of the last video RTP packet. */
  lastRtpAt = 0;

  constructor(
    private readonly ffmpegPath: string,
    readonly participantId: string,
    /** Display name, drawn on the placeholder tile. */
    readonly name: string,
    /** Asks the participant's browser for a keyframe (PLI); the owner rate-limits it. */
    private readonly requestKeyframe: (reason: string) => void,
    /** The camera's codec (the one negotiated with this participant). */
    private readonly codec: VideoCodec = "vp8",
    /** What of this camera may be decoded (decodeBudget.ts), made with its first packet; undefined: everything. */
    private readonly makeGate?: () => DecodeGate,
  ) {
    this.assembler = new Vp8FrameAssembler(120, 1024, codec === "h264" ? H264_FORMAT : undefined);
  }

  /** The tile size changed: start a decoder for the new size; the old one serves until it is ready. */
  setTileSize(w: number, h: number): void {
    if (this.closed) return;
    this.want = { w, h };
    if (!this.lastRtpAt) return; // no camera yet (mic only, or not started): no decoder until one arrives
    // The old decoder serves until the new one delivers, so the spawn can wait its turn (spawnPacer).
    void spawnTurn().then(() => {
      if (this.closed || this.want?.w !== w || this.want?.h !== h) return; // resized again meanwhile: that turn does it
      const cur = this.pending ?? this.active;
      if (cur && cur.width === w && cur.height === h && cur.alive) return;
      this.startDecoder("resize");
    });
  }

  private startDecoder(reason: string): void {
    if (!this.want || this.closed) return;
    this.pending?.close();
    const dec = new TileDecoder(this.ffmpegPath, this.participantId, this.want.w, this.want.h, this.codec);
    this.pending = dec;
    dec.on("frame", (data) => this.onDecoded(dec, data));
    dec.on("exit", (e) => {
      if (this.closed || e.expected) return;
      metrics.ffmpegRestarts.inc({ role: "tile-decoder" });
      if (this.active === dec) this.active = undefined;
      if (this.pending === dec) this.pending = undefined;
      if (this.pending) return; // a new one is starting already
      clearTimeout(this.restartTimer);
      const { timer, delayMs } = scheduleRestart(this.restarts, () => this.startDecoder("decoder died"));
      this.restartTimer = timer;
      if (delayMs === undefined) log.error("tile decoder keeps dying; holding its last frame until the tile changes", { participant: this.participantId, failures: this.restarts.recent });
    });
    this.requestKeyframe(reason);
  }

  private onDecoded(dec: TileDecoder, data: Buffer): void {
    if (dec === this.pending) {
      // The new decoder produced its first tile: it takes over.
      this.active?.close();
      this.active = dec;
      this.pending = undefined;
    }
    if (dec !== this.active) return;
    if (!this.latest) {
      const now = performance.now();
      log.debug("camera's first tile", { participant: this.participantId, msSinceFirstPacket: Math.round(now - this.firstRtpAt), msSinceFirstKeyframe: this.firstKeyframeAt ? Math.round(now - this.firstKeyframeAt) : null });
    }
    this.latest = { data, width: dec.width, height: dec.height, at: performance.now(), seq: ++this.seq };
  }

  pushRtp(rtp: RtpLike): void {
    if (this.closed) return;
    if (!this.lastRtpAt) {
      this.lastRtpAt = performance.now();
      this.firstRtpAt = this.lastRtpAt;
      this.gate = this.makeGate?.();
      this.startDecoder("first video"); // the first packet of a camera starts its decoder
    }
    this.lastRtpAt = performance.now();
    const out = this.assembler.push(rtp, this.lastRtpAt);
    if (out.dropped) metrics.videoFramesDropped.inc({}, out.dropped);
    if (out.keyframeNeeded) this.requestKeyframe("loss");
    for (const frame of out.frames) {
      if (frame.isKeyframe && !this.firstKeyframeAt) this.firstKeyframeAt = this.lastRtpAt;
      if (this.gate && !this.withinBudget(frame)) continue;
      for (const dec of [this.active, this.pending]) {
        // A decoder that has not started needs a keyframe; the participant rate-limits the PLIs.
        if (dec && !dec.decode(frame) && !dec.hasStarted) this.requestKeyframe("decoder start");
      }
    }
  }

  private gate: DecodeGate | undefined;
  private firstRtpAt = 0;
  private firstKeyframeAt = 0;
  private lastBudgetLog = -Infinity;
  private refusedSinceLog = 0;

  /** The frame fits this camera's decode budget; if not it is counted, logged (rate-limited) and the camera asked for a keyframe once there is room. */
  private withinBudget(frame: { data: Buffer; isKeyframe: boolean }): boolean {
    const gate = this.gate!;
    const size = frame.isKeyframe ? (this.codec === "h264" ? h264FrameSize(frame.data) : vp8KeyframeSize(frame.data)) : undefined;
    const refusal = gate.admit(frame.data.length, frame.isKeyframe, size);
    if (!refusal) return true;
    metrics.decodeRefused.inc({ reason: refusal });
    this.refusedSinceLog++;
    const now = performance.now();
    if (now - this.lastBudgetLog > 30_000) {
      log.warn("camera over its decode budget: frames not decoded", { participant: this.participantId, reason: refusal, size: gate.size ? `${gate.size.width}x${gate.size.height}` : undefined, refused: this.refusedSinceLog });
      this.lastBudgetLog = now;
      this.refusedSinceLog = 0;
    }
    if (gate.roomForKeyframe) this.requestKeyframe("decode budget");
    return false;
  }

  close(): void {
    if (this.closed) return;
    clearTimeout(this.restartTimer);
    this.gate?.close();
    this.closed = true;
    this.active?.close();
    this.pending?.close();
    this.active = this.pending = undefined;
  }
}
