// Rate limit for forced composite keyframes: one receiver's bad link must not flood everyone
// with keyframes. Requests inside the window are folded into one keyframe at the window's end.

import { metrics } from "../telemetry/metrics.ts";

export class KeyframeLimiter {
  private lastForcedAt = -Infinity;
  private pending = false;

  constructor(
    private readonly minIntervalMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Returns "now" when a keyframe should be forced immediately, else the delay (ms) after which to retry. */
  request(): { forceNow: true } | { forceNow: false; retryInMs: number; alreadyPending: boolean } {
    const t = this.now();
    const wait = this.lastForcedAt + this.minIntervalMs - t;
    if (wait <= 0) {
      this.lastForcedAt = t;
      this.pending = false;
      return { forceNow: true };
    }
    const alreadyPending = this.pending;
    this.pending = true;
    return { forceNow: false, retryInMs: wait, alreadyPending };
  }

  /** A keyframe happened for another reason (periodic, encoder restart): it satisfies pending requests. */
  noteKeyframe(): void {
    this.pending = false;
  }

  get hasPending(): boolean {
    return this.pending;
  }
}

/**
 * A rung encoder's keyframe requests: one forced at once when the limiter allows (the next frame is
 * then a keyframe: `pending`), else counted and retried once the interval is over. Shared by the
 * in-process and the child encoders.
 */
export class RungKeyframes {
  readonly limiter: KeyframeLimiter;
  /** The next frame is to be a keyframe. */
  pending = false;
  private retry: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(minIntervalMs: number, private readonly rung: number, private readonly log: { debug(m: string, o: Record<string, unknown>): void }) {
    this.limiter = new KeyframeLimiter(minIntervalMs);
  }

  request(reason: string): void {
    if (this.closed) return;
    const r = this.limiter.request();
    if (r.forceNow) {
      metrics.keyframesForced.inc();
      this.log.debug("composite keyframe", { rung: this.rung, reason });
      this.pending = true;
      return;
    }
    metrics.keyframeRequestsLimited.inc();
    if (!this.retry) {
      this.retry = setTimeout(() => {
        this.retry = undefined;
        if (this.limiter.hasPending) this.request(`${reason} (deferred)`);
      }, r.retryInMs + 1);
      this.retry.unref();
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retry);
  }
}
