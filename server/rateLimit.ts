// A token bucket per connection: `burst` messages at once, refilled at `perSecond`.

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }

  /** Takes `cost` tokens (1: one message; bytes, for a bandwidth bucket) if there are that many. */
  take(cost = 1): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.perSecond);
    this.last = t;
    if (this.tokens < cost) return false;
    this.tokens -= cost;
    return true;
  }
}

/**
 * A token bucket per key (a client address): each key gets `burst` at once, refilled at
 * `perSecond`. Keys whose bucket is full again are forgotten, so the map stays as small as the
 * set of clients active in the last few seconds.
 */
export class KeyedRate {
  private readonly buckets = new Map<string, { bucket: TokenBucket; at: number }>();
  private lastSweep = 0;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  take(key: string): boolean {
    const t = this.now();
    if (t - this.lastSweep > 10_000) {
      this.lastSweep = t;
      const fullAfterMs = (this.burst / this.perSecond) * 1000;
      for (const [k, v] of this.buckets) if (t - v.at > fullAfterMs) this.buckets.delete(k);
    }
    let b = this.buckets.get(key);
    if (!b) this.buckets.set(key, (b = { bucket: new TokenBucket(this.perSecond, this.burst, this.now), at: t }));
    b.at = t;
    return b.bucket.take();
  }
}
