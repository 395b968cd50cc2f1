// What of a receiver's reported loss and jitter is its own link's, and what is ours. A receiver
// report's interarrival jitter measures when our packets arrive against their RTP timestamps, so it
// includes every millisecond the server itself added: a late tick, an encoder child that was slow
// with a frame, a busy event loop before the send. Loss or jitter that every receiver of an output
// reports at once is the sender's (or the machine's), not any one link's. Pure: time comes in.
//
// The rule, per output (a codec at a rung):
// - the server's own send jitter is measured exactly as a receiver measures it (RFC 3550's
//   estimator), on the time each frame's packets go to the wire against their RTP timestamp;
// - the common share is the larger of that and the least any *other* receiver of the output
//   reported in the last REPORT_FRESH_MS (if every receiver sees it, no link is to blame);
// - a receiver's own jitter is what remains once the common share is taken out, as independent
//   variations add: sqrt(reported² − common²); its own loss is its loss minus the least loss another
//   receiver of the output reported.
// A receiver alone on its output is judged against the server's send jitter only.

/** Other receivers' reports older than this no longer say what the output's packets go through. */
export const REPORT_FRESH_MS = 5000;

export interface LinkReading {
  loss: number;
  jitterMs: number;
}

/** RFC 3550 §6.4.1 interarrival jitter, in ms, of the times our packets leave against their timestamps. */
export class SendJitter {
  private last: { at: number; ts: number } | undefined;
  private j = 0;

  constructor(private readonly clockRate = 90_000) {}

  /** A frame's `packets` packets went out at `at` (ms) with RTP timestamp `ts`. */
  frameSent(at: number, ts: number, packets: number): void {
    const last = this.last;
    this.last = { at, ts };
    if (!last || packets < 1) return;
    const tsStep = ((ts - last.ts) >>> 0) / (this.clockRate / 1000);
    if (tsStep > 10_000) return; // a timestamp jump (a new base): nothing to compare
    const d = at - last.at - tsStep;
    this.j += (Math.abs(d) - this.j) / 16;
    // The frame's other packets leave with it: each is a zero difference to its predecessor.
    this.j *= (15 / 16) ** (packets - 1);
  }

  get ms(): number {
    return this.j;
  }
}

export class OutputLinkShare {
  readonly send = new SendJitter();
  private readonly reports = new Map<string, LinkReading & { at: number }>();

  /** Receiver `id` of this output reported `r` at `now`: its own share of it. */
  judge(id: string, r: LinkReading, now: number): LinkReading & { common: LinkReading } {
    this.reports.set(id, { ...r, at: now });
    let othersJitter = Infinity;
    let othersLoss = Infinity;
    for (const [other, o] of this.reports) {
      if (other === id) continue;
      if (now - o.at > REPORT_FRESH_MS) {
        this.reports.delete(other);
        continue;
      }
      othersJitter = Math.min(othersJitter, o.jitterMs);
      othersLoss = Math.min(othersLoss, o.loss);
    }
    const common = {
      jitterMs: Math.max(this.send.ms, Number.isFinite(othersJitter) ? othersJitter : 0),
      loss: Number.isFinite(othersLoss) ? othersLoss : 0,
    };
    return {
      jitterMs: Math.sqrt(Math.max(0, r.jitterMs ** 2 - common.jitterMs ** 2)),
      loss: Math.max(0, r.loss - common.loss),
      common,
    };
  }

  /** Receiver `id` left the output. */
  forget(id: string): void {
    this.reports.delete(id);
  }
}
