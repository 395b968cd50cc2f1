// The one restart policy of the media plane. Whatever fails and is started again (a rung's encoder,
// a tile decoder, a recorder part) asks its Restarts when to: the first failure in a while at once,
// then a backoff that doubles up to a ceiling with ±25 % jitter (so a room's decoders that died
// together do not come back in the same millisecond), and none at all after `limit` failures in
// `windowMs` (the thing is broken; its owner says so and keeps what it has).

export interface RestartSettings {
  /** Failures counted over this window. */
  windowMs: number;
  /** Failures in the window after which no restart is given (Infinity: always restart). */
  limit: number;
  /** The second failure in the window waits this long; each next one twice as long. */
  baseMs: number;
  maxMs: number;
}

export const RESTARTS: RestartSettings = { windowMs: 10_000, limit: 10, baseMs: 250, maxMs: 5000 };

export class Restarts {
  private readonly failures: number[] = [];

  constructor(
    private readonly s: RestartSettings = RESTARTS,
    private readonly now: () => number = () => performance.now(),
    private readonly random: () => number = Math.random,
  ) {}

  /** A failure happened: the delay before starting again, or undefined when it failed too often to. */
  failed(): number | undefined {
    const now = this.now();
    this.failures.push(now);
    while (this.failures.length && now - this.failures[0]! > this.s.windowMs) this.failures.shift();
    const n = this.failures.length;
    if (n > this.s.limit) return undefined;
    if (n <= 1) return 0;
    const delay = Math.min(this.s.maxMs, this.s.baseMs * 2 ** (n - 2));
    return Math.round(delay * (0.75 + this.random() * 0.5));
  }

  /** Failures in the current window. */
  get recent(): number {
    const now = this.now();
    return this.failures.filter((t) => now - t <= this.s.windowMs).length;
  }
}

/**
 * Calls `start` after the policy's delay (a timer that does not keep the process alive); returns
 * the timer, or undefined when the policy gives up (and then `start` is never called).
 */
export function scheduleRestart(r: Restarts, start: () => void): { timer: NodeJS.Timeout | undefined; delayMs: number | undefined } {
  const delayMs = r.failed();
  if (delayMs === undefined) return { timer: undefined, delayMs };
  const timer = setTimeout(start, delayMs);
  timer.unref();
  return { timer, delayMs };
}
