// Rate limit for forced composite keyframes: one receiver's bad link must not flood everyone
// with keyframes. Requests inside the window are folded into one keyframe at the window's end.

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
