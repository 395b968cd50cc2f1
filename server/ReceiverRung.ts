// Which rung of the composite ladder one receiver gets: pinned (quality high / low) or following
// its link (auto), from its receiver reports and NACKs on our composite stream. The decision rule
// itself is mixer/linkAdaptation.ts; this keeps the per-report window and applies the result.
import { LinkAdaptation } from "../mixer/linkAdaptation.ts";
import type { LinkReading } from "../mixer/linkShare.ts";
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
    /** The receiver's own share of a report (what the server and every receiver see taken out: mixer/linkShare.ts). */
    private readonly judge: (r: LinkReading) => LinkReading & { common: LinkReading } = (r) => ({ ...r, common: { loss: 0, jitterMs: 0 } }),
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
    const reported = { loss: Math.max(fractionLost, sent >= 20 ? Math.min(1, nacked.size / sent) : 0), jitterMs };
    // Judged by its own link: what the server added, and what every receiver of the stream sees, is not its link's.
    const own = this.judge(reported);
    log.debug("receiver report", { participant: this.who, fractionLost, sent, nacked: nacked.size, reported, own });
    const from = this.adaptation.rung;
    const rung = this.adaptation.report(own.loss, performance.now(), sent, own.jitterMs);
    if (rung === undefined) return;
    const r2 = (x: number) => Math.round(x * 100) / 100;
    log.info("rung switch", {
      participant: this.who, from, to: rung, loss: r2(own.loss), jitterMs: Math.round(own.jitterMs),
      reported: { loss: r2(reported.loss), jitterMs: Math.round(reported.jitterMs) }, common: { loss: r2(own.common.loss), jitterMs: Math.round(own.common.jitterMs) },
    });
    metrics.rungSwitches.inc({ direction: rung > from ? "down" : "up" });
    if (rung > from) metrics.rungDowns.inc({ reason: this.adaptation.lastReason ?? "loss" });
    this.move(rung);
  }
}
