// A deadline-based periodic clock: tick k is due at start + k * period, so timer lateness never
// accumulates; when the event loop stalls past several deadlines it fires once and reports the skip.

export interface Tick {
  index: number;
  /** Scheduled time of this tick (performance.now() ms). */
  due: number;
  skipped: number;
}

/** Where a clock reads the time and sets its timer: the process's own, or a test's fake one. */
export interface TimeSource {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(timer: unknown): void;
}

export const realTime: TimeSource = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout),
};

export class MediaClock {
  private timer: unknown;
  private next = 0;
  private start = 0;
  private running = false;

  constructor(
    private readonly periodMs: number,
    private readonly onTick: (tick: Tick) => void,
    private readonly time: TimeSource = realTime,
  ) {}

  begin(): void {
    if (this.running) return;
    this.running = true;
    this.start = this.time.now();
    this.next = 0;
    this.schedule();
  }

  private schedule(): void {
    if (!this.running) return;
    const delay = Math.max(0, this.start + this.next * this.periodMs - this.time.now());
    this.timer = this.time.setTimeout(() => this.fire(), delay);
  }

  private fire(): void {
    if (!this.running) return;
    const now = this.time.now();
    const latest = Math.floor((now - this.start) / this.periodMs);
    const index = Math.max(this.next, latest);
    const skipped = index - this.next;
    this.next = index + 1;
    try {
      this.onTick({ index, due: this.start + index * this.periodMs, skipped });
    } finally {
      this.schedule();
    }
  }

  /** When tick `index` is (or was) due, performance.now() ms. */
  dueTime(index: number): number {
    return this.start + index * this.periodMs;
  }

  stop(): void {
    this.running = false;
    if (this.timer !== undefined) this.time.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
