// A deadline-based periodic clock: tick k is due at start + k * period, so timer lateness never
// accumulates. When the event loop stalls past several deadlines, a clock without catch-up fires
// once and reports the skip (video: a frame that is late is not worth composing); a clock with
// catch-up (audio: every 20 ms block is a packet the receivers count on) fires every missed tick
// in order, up to `maxCatchUp` of them, and reports only what is beyond that as skipped. Missed
// ticks run CATCH_UP_SLICE_MS at a time, with a turn of the event loop between the slices.

import { logger } from "../telemetry/log.ts";
import { noteTickLateness } from "../telemetry/lateness.ts";
import { metrics } from "../telemetry/metrics.ts";

const log = logger("clock");

/** How long a catch-up runs ticks back to back before it lets the event loop turn. */
export const CATCH_UP_SLICE_MS = 10;

export interface Tick {
  index: number;
  /** Scheduled time of this tick (performance.now() ms). */
  due: number;
  skipped: number;
  /** Fired late, with later ticks due already (a tick replayed after a stall). */
  catchingUp?: boolean;
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
    /** Missed ticks fired late rather than skipped (0: skip them all, fire the latest). */
    private readonly maxCatchUp = 0,
    /** Names the clock in logs and in mcu_tick_errors_total (video, audio). */
    private readonly name = "clock",
  ) {}

  /** Ticks whose listener threw (each one ended there; the clock went on). */
  errors = 0;
  private lastErrorLog = -Infinity;

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
    const latest = Math.max(this.next, Math.floor((now - this.start) / this.periodMs));
    const first = Math.max(this.next, latest - this.maxCatchUp);
    const skipped = first - this.next;
    this.next = first;
    if (this.time === realTime && !this.slicing) noteTickLateness(now - (this.start + first * this.periodMs));
    this.slicing = false;
    try {
      // Caught-up ticks run CATCH_UP_SLICE_MS at a time: then the loop turns (packets are read,
      // other rooms' clocks fire) and this clock goes on where it stopped. One stall must not
      // become a second one, a second of ticks run back to back.
      for (let index = first; index <= latest && this.running; index++) {
        const tick: Tick = { index, due: this.start + index * this.periodMs, skipped: index === first ? skipped : 0 };
        if (index < latest) tick.catchingUp = true;
        this.runTick(tick);
        this.next = index + 1;
        if (index < latest && this.time.now() - now >= CATCH_UP_SLICE_MS) {
          this.slicing = true;
          break;
        }
      }
    } finally {
      if (this.slicing) this.soon();
      else this.schedule();
    }
  }

  /** True while a catch-up goes on in the next turn of the loop. */
  private slicing = false;

  private soon(): void {
    if (this.running) this.timer = this.time.setTimeout(() => this.fire(), 0);
  }

  /**
   * One tick's listener: if it throws, that tick ends there, is counted and logged (once in 10 s
   * per clock, with the error), and the next tick comes as due. A throw never reaches the timer
   * (and so never uncaughtException, which would end every room of the server).
   */
  private runTick(tick: Tick): void {
    try {
      this.onTick(tick);
    } catch (err) {
      this.errors++;
      metrics.tickErrors.inc({ clock: this.name });
      const now = this.time.now();
      if (now - this.lastErrorLog > 10_000) {
        this.lastErrorLog = now;
        log.error("a clock tick threw; that tick ended there, the next comes as due", { clock: this.name, tick: tick.index, errors: this.errors, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      }
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
