// What one receiver's NACKs may make the server resend. werift resends every cached packet a NACK
// names, every time it is named, so a receiver that NACKs everything would turn one small RTCP
// packet into hundreds of retransmissions, again and again (an amplifier). Here each receiver gets
// `perSecond` retransmissions (a second of burst), and each packet is resent at most `maxRepeats`
// times; the rest of the request is dropped before werift sees it, and counted.
import { TokenBucket } from "./rateLimit.ts";

const RING = 1024;

export class RetransmitBudget {
  private readonly bucket: TokenBucket;
  private readonly seqs = new Int32Array(RING).fill(-1);
  private readonly counts = new Uint8Array(RING);

  constructor(perSecond: number, private readonly maxRepeats = 2, now?: () => number) {
    this.bucket = new TokenBucket(perSecond, perSecond, now);
  }

  /** The sequence numbers of `lost` that may be resent; `refused` says how many and why not. */
  filter(lost: readonly number[]): { allowed: number[]; rate: number; repeat: number } {
    const allowed: number[] = [];
    let rate = 0;
    let repeat = 0;
    for (const seq of lost) {
      const i = seq & (RING - 1);
      if (this.seqs[i] !== seq) {
        this.seqs[i] = seq;
        this.counts[i] = 0;
      }
      if (this.counts[i]! >= this.maxRepeats) {
        repeat++;
        continue;
      }
      if (!this.bucket.take()) {
        rate++;
        continue;
      }
      this.counts[i]!++;
      allowed.push(seq);
    }
    return { allowed, rate, repeat };
  }
}
