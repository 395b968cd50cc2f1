// Which rung of the composite ladder a receiver's link can carry, from what the receiver reports
// (RTCP receiver reports: the fraction of our packets it lost, and the interarrival jitter of
// our frames). Pure: time comes in as arguments.
//
// The rule (hysteresis, so it never flaps):
// - down one rung when the last two reports together say ≥ 10 % lost and each of them ≥ 7 %
//   (one lossy burst is not enough; two together are steadier than each alone), or when each of
//   the last two says the jitter is ≥ 50 ms (a queue on the path that fills and drains: the link
//   is at its limit before it drops anything), at most once every 2 s;
// - up one rung only after 10 s in which every report said ≤ 2 % lost and ≤ 40 ms of jitter (a
//   healthy LTE link reports 10–40 ms: one that fell on a loss burst must climb back), counted from
//   the last switch or the last report above either;
// The loss and jitter given are the receiver's own share (linkShare.ts): what the server itself
// added, and what every receiver of the output reports at once, are taken out first.
// - in between it stays where it is.

export const DOWN_LOSS = 0.1;
export const DOWN_EACH = 0.07;
export const UP_LOSS = 0.02;
export const DOWN_JITTER_MS = 50;
export const UP_JITTER_MS = 40;
export const DOWN_SPACING_MS = 2000;
export const UP_AFTER_MS = 10_000;

export class LinkAdaptation {
  /** The previous report: its loss and how many packets it covered. */
  private previous: { loss: number; packets: number; jitterMs: number } | undefined;
  private lastSwitchAt: number;
  /** Why the last move was made. */
  lastReason: "loss" | "jitter" | "clean" | undefined;
  private cleanSince: number;

  constructor(
    /** Rungs on the ladder: 0 is the top (largest). */
    private readonly rungs: number,
    /** The rung the receiver is on now. */
    public rung: number,
    now: number,
  ) {
    this.lastSwitchAt = now;
    this.cleanSince = now;
  }

  /**
   * A receiver report: `fractionLost` in [0, 1] of the `packets` it covers, and its interarrival
   * jitter in ms. Returns the rung to move to, or undefined to stay.
   */
  report(fractionLost: number, now: number, packets = 1, jitterMs = 0): number | undefined {
    if (fractionLost > UP_LOSS || jitterMs > UP_JITTER_MS) this.cleanSince = now;
    const prev = this.previous;
    this.previous = { loss: fractionLost, packets, jitterMs };
    const both = prev && prev.packets + packets > 0 ? (prev.loss * prev.packets + fractionLost * packets) / (prev.packets + packets) : 0;
    const lossy = prev !== undefined && prev.loss >= DOWN_EACH && fractionLost >= DOWN_EACH && both >= DOWN_LOSS;
    const jittery = prev !== undefined && prev.jitterMs >= DOWN_JITTER_MS && jitterMs >= DOWN_JITTER_MS;
    if ((lossy || jittery) && this.rung < this.rungs - 1 && now - this.lastSwitchAt >= DOWN_SPACING_MS) {
      this.lastReason = lossy ? "loss" : "jitter";
      return this.moveTo(this.rung + 1, now);
    }
    const cleanFor = now - Math.max(this.cleanSince, this.lastSwitchAt);
    if (this.rung > 0 && cleanFor >= UP_AFTER_MS) {
      this.lastReason = "clean";
      return this.moveTo(this.rung - 1, now);
    }
    return undefined;
  }

  private moveTo(rung: number, now: number): number {
    this.rung = rung;
    this.lastSwitchAt = now;
    this.previous = undefined;
    return rung;
  }
}
