// The server's view of its own load, sampled every LOAD_SAMPLE_MS: the CPU of its process tree
// (this process, the spawn host and every ffmpeg child, from /proc), its event-loop delay, and how
// late media ticks fire. The samples drive the overload policy (overload.ts); each change of level
// is logged, counted and shown in /metrics, and listeners (the rooms) apply it.
import { EventEmitter } from "node:events";
import fs from "node:fs";
import os from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { liveFfmpegProcesses } from "../mixer/FfmpegProcess.ts";
import { spawnHostPid } from "../mixer/spawnHost.ts";
import { takeTickLateness } from "../telemetry/lateness.ts";
import { logger } from "../telemetry/log.ts";
import { metrics } from "../telemetry/metrics.ts";
import { LOAD_SAMPLE_MS, OverloadPolicy, type LoadSample } from "./overload.ts";

const log = logger("load");
const LAG_RESOLUTION_MS = 10;
const CLK_TCK = 100; // Linux's USER_HZ on every platform Node supports

/** utime + stime of `pid` in ms, or undefined once it is gone. */
function cpuMsOf(pid: number): number | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  } catch {
    return undefined;
  }
}

export class LoadMonitor extends EventEmitter<{ level: [number] }> {
  readonly policy: OverloadPolicy;
  private readonly lag = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
  private readonly timer: NodeJS.Timeout;
  private lastAt = performance.now();
  private lastSelf = process.cpuUsage();
  /** Each child's CPU ms at the last sample (a child first seen counts from then). */
  private readonly children = new Map<number, number>();
  last: LoadSample = { cpuCores: 0, loopLagMs: 0, tickLateMs: 0 };

  /** A media worker's: the server's CPU as main last summed it, and when. */
  private server: { cores: number; at: number } | undefined;

  constructor(
    cpuBudgetFraction: number,
    private readonly cores = os.availableParallelism(),
    /** The share of the server this process is (a media worker: 1 / workers); the budget stays the server's. */
    share = 1,
  ) {
    super();
    this.policy = new OverloadPolicy(cpuBudgetFraction * cores, performance.now(), share);
    this.lag.enable();
    this.timer = setInterval(() => this.sample(), LOAD_SAMPLE_MS);
    this.timer.unref();
    metrics.overloadLevel.set(0);
  }

  get level(): number {
    return this.policy.level;
  }

  /** The whole server's CPU (main sums its workers'), which a worker's CPU budget is held to. */
  setServerCpu(cores: number): void {
    this.server = { cores, at: performance.now() };
  }

  private treeCpuMs(): number {
    const self = process.cpuUsage(this.lastSelf);
    this.lastSelf = process.cpuUsage();
    let ms = (self.user + self.system) / 1000;
    const pids = [spawnHostPid(), ...liveFfmpegProcesses().map((p) => p.pid)].filter((p): p is number => p !== undefined);
    const seen = new Set<number>();
    for (const pid of pids) {
      const now = cpuMsOf(pid);
      if (now === undefined) continue;
      seen.add(pid);
      const before = this.children.get(pid);
      if (before !== undefined) ms += Math.max(0, now - before);
      this.children.set(pid, now);
    }
    for (const pid of this.children.keys()) if (!seen.has(pid)) this.children.delete(pid);
    return ms;
  }

  private sample(): void {
    const now = performance.now();
    const wall = Math.max(1, now - this.lastAt);
    this.lastAt = now;
    const s: LoadSample = {
      cpuCores: this.treeCpuMs() / wall,
      loopLagMs: Math.max(0, this.lag.mean / 1e6 - LAG_RESOLUTION_MS),
      tickLateMs: takeTickLateness().p90,
    };
    // A media worker holds the server's CPU to the budget, as long as main's sum is fresh.
    if (this.server && now - this.server.at < 4 * LOAD_SAMPLE_MS) s.serverCpuCores = Math.max(this.server.cores, s.cpuCores);
    this.lag.reset();
    this.last = s;
    metrics.loadCpuCores.set(Math.round(s.cpuCores * 1000) / 1000);
    metrics.loadLoopLagMs.set(Math.round(s.loopLagMs));
    metrics.loadTickLateMs.set(Math.round(s.tickLateMs));
    const from = this.policy.level;
    const level = this.policy.sample(s, now);
    if (level === undefined) return;
    metrics.overloadLevel.set(level);
    metrics.overloadSteps.inc({ direction: level > from ? "up" : "down", to: String(level) });
    const r = (x: number) => Math.round(x * 100) / 100;
    const how = { from, to: level, cpuCores: r(s.cpuCores), ...(s.serverCpuCores !== undefined ? { serverCpuCores: r(s.serverCpuCores) } : {}), budgetCores: r(this.policy.cpuBudget), loopLagMs: Math.round(s.loopLagMs), tickLateMs: Math.round(s.tickLateMs), cores: this.cores };
    if (level > from) log.warn(`overloaded (${this.policy.lastCause}): level ${level}`, how);
    else log.info(`load eased: level ${level}`, how);
    this.emit("level", level);
  }

  close(): void {
    clearInterval(this.timer);
    this.lag.disable();
  }
}
