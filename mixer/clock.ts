// A deadline-based periodic clock: tick k is due at start + k * period, so timer lateness never
// accumulates; when the event loop stalls past several deadlines it fires once and reports the skip.

export interface Tick {
  index: number;
  /** Scheduled time of this tick (performance.now() ms). */
  due: number;
  skipped: number;
}

export class MediaClock {
  private timer: NodeJS.Timeout | undefined;
  private next = 0;
  private start = 0;
  private running = false;

  constructor(
    private readonly periodMs: number,
    private readonly onTick: (tick: Tick) => void,
  ) {}

  begin(): void {
    if (this.running) return;
    this.running = true;
    this.start = performance.now();
    this.next = 0;
    this.schedule();
  }

  private schedule(): void {
    if (!this.running) return;
    const delay = Math.max(0, this.start + this.next * this.periodMs - performance.now());
    this.timer = setTimeout(() => this.fire(), delay);
  }

  private fire(): void {
    if (!this.running) return;
    const now = performance.now();
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
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
