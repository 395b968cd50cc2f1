// Which rung of the composite ladder a receiver's link can carry, from what the receiver reports
// (RTCP receiver reports: the fraction of our packets it lost). Pure: time comes in as arguments.
//
// The rule (hysteresis, so it never flaps):
// - down one rung when the last two reports together say ≥ 10 % lost and each of them ≥ 7 %
//   (one lossy burst is not enough; two together are steadier than each alone), at most once
//   every 2 s;
// - up one rung only after 10 s in which every report said ≤ 2 % lost, counted from the last
//   switch or the last report above 2 %;
// - between 2 % and 10 % it stays where it is.

export const DOWN_LOSS = 0.1;
export const DOWN_EACH = 0.07;
export const UP_LOSS = 0.02;
export const DOWN_SPACING_MS = 2000;
export const UP_AFTER_MS = 10_000;

export class LinkAdaptation {
  /** The previous report: its loss and how many packets it covered. */
  private previous: { loss: number; packets: number } | undefined;
  private lastSwitchAt: number;
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
   * A receiver report: `fractionLost` in [0, 1] of the `packets` it covers. Returns the rung to move
   * to, or undefined to stay.
   */
  report(fractionLost: number, now: number, packets = 1): number | undefined {
    if (fractionLost > UP_LOSS) this.cleanSince = now;
    const prev = this.previous;
    this.previous = { loss: fractionLost, packets };
    const both = prev && prev.packets + packets > 0 ? (prev.loss * prev.packets + fractionLost * packets) / (prev.packets + packets) : 0;
    const lossy = prev !== undefined && prev.loss >= DOWN_EACH && fractionLost >= DOWN_EACH && both >= DOWN_LOSS;
    if (lossy && this.rung < this.rungs - 1 && now - this.lastSwitchAt >= DOWN_SPACING_MS) {
      return this.moveTo(this.rung + 1, now);
    }
    const cleanFor = now - Math.max(this.cleanSince, this.lastSwitchAt);
    if (this.rung > 0 && cleanFor >= UP_AFTER_MS) return this.moveTo(this.rung - 1, now);
    return undefined;
  }

  private moveTo(rung: number, now: number): number {
    this.rung = rung;
    this.lastSwitchAt = now;
    this.previous = undefined;
    return rung;
  }
}
