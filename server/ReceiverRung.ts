// Which rung of the composite ladder one receiver gets: pinned (quality high / low) or following
// its link (auto), from its receiver reports and NACKs on our composite stream. The decision rule
// itself is mixer/linkAdaptation.ts; this keeps the per-report window and applies the result.
import { LinkAdaptation } from "../mixer/linkAdaptation.ts";
import { logger } from "../telemetry/log.ts";
import { metrics } from "../telemetry/metrics.ts";

const log = logger("rung");

export type Quality = "auto" | "high" | "low";

export class ReceiverRung {
  private quality: Quality = "auto";
  private adaptation: LinkAdaptation;
  /** Since the last receiver report: composite packets sent, and the distinct ones the receiver NACKed. */
  private window = { sent: 0, nacked: new Set<number>() };

  constructor(
    private readonly rungs: number,
    /** Moves the receiver (the mixer switches it at the new rung's next keyframe). */
    private readonly move: (rung: number) => void,
    private readonly who: string,
  ) {
    this.adaptation = new LinkAdaptation(rungs, 0, performance.now());
  }

  /** Where a receiver starts: the top rung, or the lowest for `low`. */
  get start(): number {
    return this.quality === "low" ? this.rungs - 1 : 0;
  }

  /** high: the top rung; low: the lowest (data saver); auto: follow the link, from the top. */
  setQuality(q: Quality): number {
    this.quality = q;
    this.adaptation = new LinkAdaptation(this.rungs, this.start, performance.now());
    return this.start;
  }

  packetSent(): void {
    this.window.sent++;
  }

  nacked(seqs: number[]): void {
    if (this.window.nacked.size < 10_000) for (const s of seqs) this.window.nacked.add(s);
  }

  /**
   * The receiver reported on our composite: in auto, how much of it was lost and how unevenly it
   * arrives (interarrival jitter, ms) pick its rung. The report's own fraction counts
   * retransmissions (werift repairs loss with NACK on the same SSRC), so the share of packets the
   * receiver NACKed since its last report counts too.
   */
  report(fractionLost: number, jitterMs = 0): void {
    const { sent, nacked } = this.window;
    this.window = { sent: 0, nacked: new Set() };
    if (this.quality !== "auto") return;
    const loss = Math.max(fractionLost, sent >= 20 ? Math.min(1, nacked.size / sent) : 0);
    log.debug("receiver report", { participant: this.who, fractionLost, sent, nacked: nacked.size, loss, jitterMs });
    const from = this.adaptation.rung;
    const rung = this.adaptation.report(loss, performance.now(), sent, jitterMs);
    if (rung === undefined) return;
    log.info("rung switch", { participant: this.who, from, to: rung, loss: Math.round(loss * 100) / 100, jitterMs: Math.round(jitterMs) });
    metrics.rungSwitches.inc({ direction: rung > from ? "down" : "up" });
    if (rung > from) metrics.rungDowns.inc({ reason: this.adaptation.lastReason ?? "loss" });
    this.move(rung);
  }
}
