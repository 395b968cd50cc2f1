// CPU time and RSS of a whole process tree from /proc, sampled on a timer. Children come and
// go (encoder swaps, placeholder renders), so per process (keyed pid:starttime) we keep its
// utime+stime ("self") and cutime+cstime ("reaped": the whole lifetime of every child it has
// waited for) at the window start (0 if born later) and at the last sample. Then
//   window CPU = sum over processes alive at the end of (self delta + reaped delta)
//              - sum over processes that exited in the window of (self + reaped at the start),
// since an exited process's whole lifetime shows up in its parent's reaped delta; a child
// born and reaped between two samples is counted through its parent too.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";

function getconf(name: string, def: number): number {
  try {
    const v = Number(execFileSync("getconf", [name], { encoding: "utf8" }).trim());
    return Number.isFinite(v) && v > 0 ? v : def;
  } catch {
    return def;
  }
}

export const CLK_TCK = getconf("CLK_TCK", 100);
export const PAGE_SIZE = getconf("PAGESIZE", 4096);

interface Stat {
  pid: number;
  ppid: number;
  /** utime + stime, clock ticks. */
  self: number;
  /** cutime + cstime, clock ticks. */
  reaped: number;
  start: number;
  rssBytes: number;
}

function readStat(pid: number): Stat | undefined {
  let s: string;
  try {
    s = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return undefined;
  }
  // Fields after "(comm) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
  // utime stime cutime cstime priority nice threads itrealvalue starttime vsize rss ...
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return {
    pid,
    ppid: Number(f[1]),
    self: Number(f[11]) + Number(f[12]),
    reaped: Number(f[13]) + Number(f[14]),
    start: Number(f[19]),
    rssBytes: Number(f[21]) * PAGE_SIZE,
  };
}

/** The root and all its descendants, from one pass over /proc. */
export function treeStats(root: number): { root: Stat | undefined; descendants: Stat[] } {
  const byParent = new Map<number, Stat[]>();
  let rootStat: Stat | undefined;
  for (const name of fs.readdirSync("/proc")) {
    if (name.charCodeAt(0) > 57) continue; // not a digit
    const st = readStat(Number(name));
    if (!st) continue;
    if (st.pid === root) rootStat = st;
    const list = byParent.get(st.ppid);
    if (list) list.push(st);
    else byParent.set(st.ppid, [st]);
  }
  const descendants: Stat[] = [];
  const queue = [root];
  while (queue.length) {
    for (const c of byParent.get(queue.pop()!) ?? []) {
      descendants.push(c);
      queue.push(c.pid);
    }
  }
  return { root: rootStat, descendants };
}

/** Busy cores of the whole machine over the next `ms`. */
export async function machineBusyCores(ms: number): Promise<number> {
  const a = machineTicks();
  await new Promise((r) => setTimeout(r, ms));
  const b = machineTicks();
  return ((b.busy - a.busy) / Math.max(1, b.total - a.total)) * os.cpus().length;
}

/** Busy and total jiffies of the whole machine (first line of /proc/stat). */
function machineTicks(): { busy: number; total: number } {
  const f = fs.readFileSync("/proc/stat", "latin1").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - f[3] - (f[4] ?? 0), total };
}

export interface TreeUsage {
  wallS: number;
  cpuS: number;
  /** CPU-seconds per second (cores). */
  cores: number;
  /** Of which the root process itself (its own threads). */
  rootCores: number;
  peakRssMB: number;
  meanRssMB: number;
  /** Proportional set size of the tree (shared pages divided among their users). */
  peakPssMB: number;
  /** Most processes seen in the tree at once (root included). */
  peakProcesses: number;
  /** Descendants that were born during the window. */
  spawnedInWindow: number;
  /** Busy fraction of all the machine's CPUs over the window (0..1). */
  machineBusy: number;
  /** Cores by role (own utime+stime; children that exited are "(exited, unattributed)"). */
  byRole: Record<string, number>;
  samples: number;
}

interface Seen {
  base: number;
  last: number;
  selfBase: number;
  selfLast: number;
  role: string;
  present: boolean;
  born: boolean;
}

/** A process's argv from /proc (empty when it is gone). */
export function cmdline(pid: number): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "latin1").split("\0").filter(Boolean);
  } catch {
    return [];
  }
}

export class TreeSampler {
  private readonly seen = new Map<string, Seen>();
  private timer: NodeJS.Timeout | undefined;
  private t0 = 0;
  private root0: Stat | undefined;
  private rootLast: Stat | undefined;
  private rootAlive = false;
  private m0 = { busy: 0, total: 0 };
  private rss: number[] = [];
  private pss: number[] = [];
  private peakProcs = 0;
  private started = false;

  constructor(
    private readonly rootPid: number,
    /** Names the role of a process (read once per process) for the per-role breakdown. */
    private readonly classify: (pid: number, argv: string[]) => string = (_pid, argv) => argv[0]?.split("/").pop() ?? "?",
    private readonly intervalMs = 250,
  ) {}

  start(): void {
    this.m0 = machineTicks();
    this.t0 = performance.now();
    this.sample();
    this.root0 = this.rootLast;
    if (!this.root0) throw new Error(`process ${this.rootPid} is not running`);
    this.started = true;
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  private sample(): void {
    const { root, descendants } = treeStats(this.rootPid);
    this.rootAlive = !!root && (!this.root0 || root.start === this.root0.start);
    if (!root || !this.rootAlive) return; // root gone: stop() reports it
    this.rootLast = root;
    for (const s of this.seen.values()) s.present = false;
    let rss = 0;
    for (const d of [root, ...descendants]) {
      rss += d.rssBytes;
      const key = `${d.pid}:${d.start}`;
      const total = d.self + d.reaped;
      const s = this.seen.get(key);
      if (s) {
        s.last = total;
        s.selfLast = d.self;
        s.present = true;
      } else {
        const base = this.started ? 0 : total;
        const selfBase = this.started ? 0 : d.self;
        const role = this.classify(d.pid, cmdline(d.pid));
        this.seen.set(key, { base, last: total, selfBase, selfLast: d.self, role, present: true, born: this.started });
      }
    }
    this.rss.push(rss);
    // PSS splits shared pages (the static ffmpeg binary mapped by every child) fairly: the real
    // memory cost. Reading smaps_rollup walks page tables, so only every 8th sample.
    if (this.rss.length % 8 === 1) this.pss.push([root, ...descendants].reduce((a, d) => a + pssBytes(d.pid), 0));
    this.peakProcs = Math.max(this.peakProcs, 1 + descendants.length);
  }

  stop(): TreeUsage {
    clearInterval(this.timer);
    this.sample();
    const wallS = (performance.now() - this.t0) / 1000;
    const m1 = machineTicks();
    const r0 = this.root0!;
    const r1 = this.rootLast!;
    if (!this.rootAlive) throw new Error(`process ${this.rootPid} exited during the measurement`);
    const rootTicks = r1.self - r0.self;
    let ticks = 0;
    let spawned = 0;
    const roleTicks = new Map<string, number>();
    for (const s of this.seen.values()) {
      if (s.born) spawned++;
      ticks += s.present ? s.last - s.base : -s.base;
      roleTicks.set(s.role, (roleTicks.get(s.role) ?? 0) + s.selfLast - s.selfBase);
    }
    const attributed = [...roleTicks.values()].reduce((a, b) => a + b, 0);
    if (ticks - attributed !== 0) roleTicks.set("(exited, unattributed)", ticks - attributed);
    const byRole: Record<string, number> = {};
    for (const [role, t] of [...roleTicks].sort((a, b) => b[1] - a[1])) byRole[role] = t / CLK_TCK / wallS;
    const cpuS = ticks / CLK_TCK;
    const mb = (b: number) => b / (1024 * 1024);
    return {
      wallS,
      cpuS,
      cores: cpuS / wallS,
      rootCores: rootTicks / CLK_TCK / wallS,
      peakRssMB: mb(Math.max(...this.rss)),
      meanRssMB: mb(this.rss.reduce((a, b) => a + b, 0) / this.rss.length),
      peakPssMB: mb(Math.max(0, ...this.pss)),
      peakProcesses: this.peakProcs,
      spawnedInWindow: spawned,
      machineBusy: (m1.busy - this.m0.busy) / Math.max(1, m1.total - this.m0.total),
      byRole,
      samples: this.rss.length,
    };
  }
}

function pssBytes(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0; // exited between listing and reading
  }
}
