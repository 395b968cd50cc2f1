// The overload policy: from the server's own load, sampled every LOAD_SAMPLE_MS, a level that says
// what it gives up, in this order (each level keeps what the levels below it do):
//   0 normal;
//   1 busy: no new rooms or participants on this node (`server_busy`; in a cluster the node is
//     reported full, so new rooms are placed elsewhere);
//   2 the composite at 20 fps (every room; frames are left out evenly, counted);
//   3 the composite at 15 fps.
// Over budget: the process tree's CPU above OVERLOAD_CPU of the machine's cores, or — while the tree
// uses at least half that budget — the event loop behind by 50 ms on average, or media ticks firing
// late (p90 above 50 ms). Up one level after 10
// over-budget samples in a row (5 s: a burst of joins, or browsers starting on the same machine,
// is not overload), at most once every 3 s; down one level after 10 s with every
// sample well inside (CPU under 80 % of the budget, lag and lateness under half their limits).
// Pure: samples and time come in as arguments.

export const LOAD_SAMPLE_MS = 500;
export const MAX_LOOP_LAG_MS = 50;
export const MAX_TICK_LATE_MS = 50;
export const UP_AFTER_SAMPLES = 10;
/** Lateness counts as overload only while the tree uses at least this share of its CPU budget. */
export const BUSY_SHARE = 0.5;
export const UP_SPACING_MS = 3000;
export const DOWN_AFTER_MS = 10_000;
/** The composite frame rate at each level (level 0 and 1: the configured rate). */
export const LEVEL_FPS = [undefined, undefined, 20, 15] as const;
export const MAX_LEVEL = 3;

export interface LoadSample {
  /** CPU of this server's process tree (itself, the spawn host, every ffmpeg child), in cores. */
  cpuCores: number;
  /** Event-loop delay, mean over the sample, ms (one long task is not overload; a loop that is always behind is). */
  loopLagMs: number;
  /** How late media ticks fired, 90th percentile over the sample, ms. */
  tickLateMs: number;
  /**
   * A media worker's: the whole server's CPU (every worker's tree and main), which the CPU budget
   * is held to; `cpuCores` is then the worker's own, which says whether its lateness is its own doing.
   */
  serverCpuCores?: number;
}

export type OverloadCause = "cpu" | "loop_lag" | "tick_late";

export class OverloadPolicy {
  level = 0;
  private overRun = 0;
  private lastUpAt = -Infinity;
  private calmSince: number;
  /** What put it over budget last. */
  lastCause: OverloadCause | undefined;

  constructor(
    /** Cores the tree may use before it is over budget (OVERLOAD_CPU × the machine's cores). */
    private cpuBudgetCores: number,
    now: number,
    /** The share of the server this policy is for (a media worker: 1 / workers). */
    private readonly share = 1,
  ) {
    this.calmSince = now;
  }

  get cpuBudget(): number {
    return this.cpuBudgetCores;
  }

  /** Why `s` is over budget, or undefined when it is not. */
  overBy(s: LoadSample): OverloadCause | undefined {
    if ((s.serverCpuCores ?? s.cpuCores) > this.cpuBudgetCores) return "cpu";
    // Lateness while the server itself uses little CPU is not its work outgrowing the machine: a
    // stall (a synchronous call of whoever shares the process) or other programs taking the cores,
    // which shedding our own media would not mend (NODE_MAX_CPU keeps a busy machine's node from new rooms).
    // (A media worker: late while using little of its own share of the budget.)
    if (s.cpuCores < BUSY_SHARE * this.cpuBudgetCores * this.share) return undefined;
    if (s.loopLagMs > MAX_LOOP_LAG_MS) return "loop_lag";
    if (s.tickLateMs > MAX_TICK_LATE_MS) return "tick_late";
    return undefined;
  }

  private calm(s: LoadSample): boolean {
    return (s.serverCpuCores ?? s.cpuCores) < 0.8 * this.cpuBudgetCores && s.loopLagMs < MAX_LOOP_LAG_MS / 2 && s.tickLateMs < MAX_TICK_LATE_MS / 2;
  }

  /** One sample; returns the new level when it changed. */
  sample(s: LoadSample, now: number): number | undefined {
    const cause = this.overBy(s);
    if (cause) {
      this.lastCause = cause;
      this.overRun++;
      this.calmSince = now;
      if (this.overRun >= UP_AFTER_SAMPLES && this.level < MAX_LEVEL && now - this.lastUpAt >= UP_SPACING_MS) {
        this.level++;
        this.lastUpAt = now;
        return this.level;
      }
      return undefined;
    }
    this.overRun = 0;
    if (!this.calm(s)) {
      this.calmSince = now;
      return undefined;
    }
    if (this.level > 0 && now - this.calmSince >= DOWN_AFTER_MS) {
      this.level--;
      this.calmSince = now;
      return this.level;
    }
    return undefined;
  }
}
