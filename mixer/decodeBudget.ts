// What the server decodes for a camera is bounded before any decoder sees a byte: in pixels per
// frame and per second and in bits per second for each participant, in pixels per second for each
// client address, and in pixels per second for the whole server. Sizes come from the frame's own
// header (frameSize.ts), rates from arrival.
//
// A frame is decoded only if it fits, and only if the frame before it was (an inter frame needs
// its reference), so once one is refused the camera waits for a keyframe that fits; the owner asks
// for one (PLI) when there is room again. A frame larger than the largest a camera sends
// (oversize) is never decoded in a stream: one such keyframe every `oversizeIntervalMs` keeps its
// tile a slowly refreshed still. A pool (an address's, the server's) is shared in order of
// arrival: a frame fits if the pixels decoded in the last second for the member and everyone who
// came before it, plus this frame, stay within the pool, so a newcomer over the pool waits and the
// running call keeps its frames. A keyframe that changes the picture size within
// `resizeIntervalMs` of the last change is refused (resize): each change costs the decoder a
// re-initialisation (~6 ms of CPU measured for VP8 at 720p), so a sender that changes size on every
// keyframe is held to one change per interval, and its tile shows the last picture meanwhile.

export interface DecodeLimits {
  /** Largest picture decoded in a stream (width × height). */
  maxFramePixels: number;
  /** Pixels per second decoded for one participant. */
  pixelsPerSecond: number;
  /** Bits per second of camera taken from one participant. */
  bitsPerSecond: number;
  /** One oversize keyframe decoded at most this often, for its tile's still. */
  oversizeIntervalMs: number;
  /** A camera's picture size may change at most this often (each change re-creates its decoder's scaler). */
  resizeIntervalMs: number;
}

export type DecodeRefusal = "oversize" | "resize" | "pixels" | "bits" | "address" | "server" | "reference";

/** A window of the last second in ten bins: what was offered (pixels), for a pool's view of demand. */
class SecondWindow {
  private readonly bins = new Float64Array(10);
  private bin = -1;
  add(now: number, v: number): void {
    this.roll(now);
    this.bins[this.bin % 10]! += v;
  }
  sum(now: number): number {
    this.roll(now);
    let s = 0;
    for (const v of this.bins) s += v;
    return s;
  }
  private roll(now: number): void {
    const b = Math.floor(now / 100);
    if (this.bin < 0) this.bin = b;
    for (; this.bin < b && b - this.bin <= 10; ) this.bins[++this.bin % 10] = 0;
    if (b - this.bin > 10) (this.bins.fill(0), (this.bin = b));
  }
}

/** Pixels per second shared by its members in order of arrival. */
export class DecodePool {
  private readonly members: DecodeGate[] = [];

  constructor(readonly name: "address" | "server", readonly pixelsPerSecond: number) {}

  join(g: DecodeGate): void {
    this.members.push(g);
  }

  leave(g: DecodeGate): void {
    const i = this.members.indexOf(g);
    if (i >= 0) this.members.splice(i, 1);
  }

  get size(): number {
    return this.members.length;
  }

  /** Whether `g` fits: its demand and that of everyone before it within the pool. */
  fits(g: DecodeGate, extra: number, now: number): boolean {
    let sum = extra;
    for (const m of this.members) {
      sum += m.demand(now);
      if (m === g) break;
    }
    return sum <= this.pixelsPerSecond;
  }
}

/** The server's decode pools: one for the whole server, one per client address (dropped when empty). */
export class DecodeBudgets {
  readonly server: DecodePool;
  private readonly addresses = new Map<string, DecodePool>();

  constructor(
    readonly limits: DecodeLimits,
    /** Pixels per second for all participants from one address, and for the whole server. */
    private readonly addressPixelsPerSecond: number,
    serverPixelsPerSecond: number,
  ) {
    this.server = new DecodePool("server", serverPixelsPerSecond);
  }

  /** A gate for a camera from `address`, in its address's pool and the server's. */
  gate(address: string): DecodeGate {
    let pool = this.addresses.get(address);
    if (!pool) this.addresses.set(address, (pool = new DecodePool("address", this.addressPixelsPerSecond)));
    const g = new DecodeGate(this.limits, [pool, this.server], undefined, () => {
      if (!pool.size) this.addresses.delete(address);
    });
    return g;
  }
}

/** One participant's camera: decides per frame whether it reaches the decoder. */
export class DecodeGate {
  private pixelTokens: number;
  private bitTokens: number;
  private last: number;
  /** Pixels it was let decode in the last second: what it holds of its pools. */
  private readonly decoded = new SecondWindow();
  /** The previous frame reached the decoder: an inter frame may follow. */
  private chained = false;
  private lastOversizeAt = -Infinity;
  private lastResizeAt = -Infinity;
  /** The last keyframe was refused for changing size too soon: no keyframe is asked for before the interval ends. */
  private resizeRefused = false;
  /** Size of the last keyframe: inter frames have the same. */
  size: { width: number; height: number } | undefined;

  constructor(
    private readonly limits: DecodeLimits,
    private readonly pools: DecodePool[],
    private readonly now: () => number = () => performance.now(),
    private readonly onClose?: () => void,
  ) {
    this.pixelTokens = limits.pixelsPerSecond;
    this.bitTokens = limits.bitsPerSecond;
    this.last = now();
    for (const p of pools) p.join(this);
  }

  /** Pixels per second it decodes now: what it holds of its pools. */
  demand(now: number): number {
    return this.decoded.sum(now);
  }

  /**
   * One assembled frame (its size read from its header by the caller when it is a keyframe):
   * undefined if it may be decoded, else why not.
   */
  admit(bytes: number, isKeyframe: boolean, keyframeSize: { width: number; height: number } | undefined): DecodeRefusal | undefined {
    const now = this.now();
    const dt = (now - this.last) / 1000;
    this.last = now;
    const L = this.limits;
    this.pixelTokens = Math.min(L.pixelsPerSecond, this.pixelTokens + dt * L.pixelsPerSecond);
    this.bitTokens = Math.min(L.bitsPerSecond, this.bitTokens + dt * L.bitsPerSecond);
    let refusal: DecodeRefusal | undefined;
    if (isKeyframe && keyframeSize) {
      const changed = this.size !== undefined && (keyframeSize.width !== this.size.width || keyframeSize.height !== this.size.height);
      if (changed && now - this.lastResizeAt < L.resizeIntervalMs) refusal = "resize";
      else {
        if (changed) this.lastResizeAt = now;
        this.size = keyframeSize;
      }
      this.resizeRefused = refusal === "resize";
    }
    const pixels = this.size ? this.size.width * this.size.height : 0;
    const bits = bytes * 8;
    refusal ??= this.judge(now, isKeyframe, pixels, bits);
    this.chained = refusal === undefined;
    if (refusal === undefined) {
      this.decoded.add(now, pixels);
      this.pixelTokens -= pixels;
      this.bitTokens -= bits;
    }
    return refusal;
  }

  private judge(now: number, isKeyframe: boolean, pixels: number, bits: number): DecodeRefusal | undefined {
    if (!isKeyframe && !this.chained) return "reference";
    if (pixels > this.limits.maxFramePixels) {
      if (!isKeyframe || now - this.lastOversizeAt < this.limits.oversizeIntervalMs) return "oversize";
      if (!this.poolsFit(now, pixels)) return this.poolRefusal;
      this.lastOversizeAt = now;
      return undefined;
    }
    if (bits > this.bitTokens) return "bits";
    if (pixels > this.pixelTokens) return "pixels";
    if (!this.poolsFit(now, pixels)) return this.poolRefusal;
    return undefined;
  }

  private poolRefusal: DecodeRefusal = "server";

  private poolsFit(now: number, extra: number): boolean {
    for (const p of this.pools) {
      if (!p.fits(this, extra, now)) {
        this.poolRefusal = p.name;
        return false;
      }
    }
    return true;
  }

  /** A keyframe now would be taken (the owner's cue to send a PLI after refusals). */
  get roomForKeyframe(): boolean {
    if (this.resizeRefused && this.now() - this.lastResizeAt < this.limits.resizeIntervalMs) return false;
    const px = this.size ? this.size.width * this.size.height : 0;
    if (px > this.limits.maxFramePixels) return this.now() - this.lastOversizeAt >= this.limits.oversizeIntervalMs;
    return this.pixelTokens >= Math.min(px, this.limits.pixelsPerSecond) * 0.99;
  }

  close(): void {
    for (const p of this.pools) p.leave(this);
    this.onClose?.();
  }
}
