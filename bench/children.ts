// Child processes of the benchmark: each is spawned as the leader of its own process group so
// that it and everything it spawns (the server's ffmpeg children) can be killed together.
// Every group is killed on exit, SIGINT/SIGTERM/SIGHUP and uncaught errors.
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import fs from "node:fs";

const groups = new Set<number>();

/** Spawns `cmd` as a new process-group leader and registers the group for cleanup. */
export function spawnGroup(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawn(cmd, args, { ...opts, detached: true });
  if (child.pid === undefined) throw new Error(`could not spawn ${cmd}`);
  groups.add(child.pid);
  return child;
}

/** Pids whose process group is `pgid` (field 5 of /proc/<pid>/stat). */
export function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const s = fs.readFileSync(`/proc/${name}/stat`, "latin1");
      const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
      if (Number(rest[2]) === pgid && rest[0] !== "Z") out.push(Number(name));
    } catch {
      // exited while we looked
    }
  }
  return out;
}

export function killGroup(pgid: number, signal: NodeJS.Signals = "SIGKILL"): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

/** SIGKILLs the group and waits (up to `timeoutMs`) until none of its members is left and the leader is reaped. */
export async function reapGroup(pgid: number, leader?: ChildProcess, timeoutMs = 3000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    killGroup(pgid);
    const left = groupMembers(pgid);
    if (left.length === 0) break;
    if (Date.now() - t0 > timeoutMs) throw new Error(`processes ${left.join(",")} of group ${pgid} survived SIGKILL`);
    await new Promise((r) => setTimeout(r, 50));
  }
  groups.delete(pgid);
  if (leader) await waitExit(leader, timeoutMs);
}

/** Waits for `child` to exit; resolves false on timeout. */
export function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), timeoutMs);
    child.once("exit", () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

function killAll(): void {
  for (const g of groups) killGroup(g);
  groups.clear();
}

let installed = false;

/** Installs the exit/signal handlers that kill every registered group. */
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  process.on("exit", killAll);
  const codes: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
  for (const [sig, code] of Object.entries(codes)) {
    process.once(sig as NodeJS.Signals, () => {
      console.error(`\n${sig}: stopping children`);
      killAll();
      process.exit(code);
    });
  }
  const fatal = (err: unknown) => {
    console.error(err);
    killAll();
    process.exit(1);
  };
  process.on("uncaughtException", fatal);
  // A stray rejection inside werift (e.g. while a peer closes) must not abort a long run.
  process.on("unhandledRejection", (err) => console.error("warning: unhandled rejection:", (err as Error)?.message ?? err));
}
