// What of a receiver's reported loss and jitter is its own link's, and what is ours. A receiver
// report's interarrival jitter measures when our packets arrive against their RTP timestamps, so it
// includes every millisecond the server itself added: a late tick, an encoder child that was slow
// with a frame, a busy event loop before the send. Loss or jitter that every receiver of an output
// reports at once is the sender's (or the machine's), not any one link's. Pure: time comes in.
//
// The rule, per output (a codec at a rung):
// - the server's own send jitter is measured exactly as a receiver measures it (RFC 3550's
//   estimator), on the time each frame's packets go to the wire against their RTP timestamp;
// - the common share of jitter is the larger of that and the median of what the *other* receivers
//   of the output reported in the last REPORT_FRESH_MS (what most receivers see is no one link's);
//   of loss, the least any other receiver reported (loss is rarely anyone's but a link's);
// - a receiver's own jitter is what remains once the common share is taken out, as independent
//   variations add: sqrt(reported² − common²) — but only when it stands out, at STANDS_OUT × the
//   common share or more; short of that it has none of its own. Browsers starved of CPU on a busy
//   machine report 120–230 ms each with nothing lost, within 1–2.8× of one another; a link that
//   really stalls and bursts reports 60 ms where the others report 5–10. Its own loss is its loss
//   minus the least loss another receiver of the output reported.
// A receiver alone on its output is judged against the server's send jitter only.

/** Other receivers' reports older than this no longer say what the output's packets go through. */
export const REPORT_FRESH_MS = 5000;
/** A receiver's jitter is its own link's only when it is at least this many times the common share. */
export const STANDS_OUT = 3;

export interface LinkReading {
  loss: number;
  jitterMs: number;
}

function median(xs: number[]): number {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
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
    const jitters: number[] = [];
    let othersLoss = Infinity;
    for (const [other, o] of this.reports) {
      if (other === id) continue;
      if (now - o.at > REPORT_FRESH_MS) {
        this.reports.delete(other);
        continue;
      }
      jitters.push(o.jitterMs);
      othersLoss = Math.min(othersLoss, o.loss);
    }
    const common = {
      jitterMs: Math.max(this.send.ms, median(jitters)),
      loss: Number.isFinite(othersLoss) ? othersLoss : 0,
    };
    const standsOut = r.jitterMs >= STANDS_OUT * common.jitterMs;
    return {
      jitterMs: standsOut ? Math.sqrt(r.jitterMs ** 2 - common.jitterMs ** 2) : 0,
      loss: Math.max(0, r.loss - common.loss),
      common,
    };
  }

  /** Receiver `id` left the output. */
  forget(id: string): void {
    this.reports.delete(id);
  }
}
