// One ffmpeg child with exactly one owner: spawned with pipes, closed by close(), and an
// 'exit' that says whether it was asked to stop or died (with the tail of its stderr).
import { spawn, type ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import type { Readable, Writable } from "node:stream";
import { logger } from "../server/log.ts";
import { metrics } from "../server/metrics.ts";

const log = logger("ffmpeg");
const live = new Set<FfmpegProcess>();

export interface FfmpegExit {
  role: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when close() asked for it; false means it died on its own. */
  expected: boolean;
  stderrTail: string;
}

export class FfmpegProcess extends EventEmitter<{ exit: [FfmpegExit] }> {
  private readonly child: ChildProcess;
  private closing = false;
  private exited = false;
  private stderrTail = "";
  readonly stdin: Writable;
  readonly stdout: Readable;
  /** Input pipes beyond stdin: extraInputs[0] is `pipe:3`, [1] is `pipe:4`, … */
  readonly extraInputs: Writable[];

  constructor(
    ffmpegPath: string,
    readonly role: string,
    args: string[],
    extraInputCount = 0,
  ) {
    super();
    this.child = spawn(ffmpegPath, ["-hide_banner", "-nostdin", "-loglevel", "error", ...args], {
      stdio: ["pipe", "pipe", "pipe", ...Array<"pipe">(extraInputCount).fill("pipe")],
    });
    live.add(this);
    this.stdin = this.child.stdin!;
    this.stdout = this.child.stdout!;
    this.extraInputs = this.child.stdio.slice(3) as Writable[];
    // A write after the child died raises EPIPE: the exit handler reports it, not a crash.
    for (const w of [this.stdin, ...this.extraInputs]) w.on("error", () => {});
    this.child.stderr!.on("data", (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString()).slice(-2000);
    });
    this.child.on("error", (err) => {
      this.stderrTail += `\nspawn error: ${err.message}`;
      this.onExit(null, null);
    });
    this.child.on("exit", (code, signal) => this.onExit(code, signal));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return !this.exited;
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exited) return;
    this.exited = true;
    live.delete(this);
    const expected = this.closing;
    if (!expected) {
      metrics.ffmpegExits.inc({ role: this.role });
      log.warn("ffmpeg child exited unexpectedly", { role: this.role, pid: this.pid, code, signal, stderr: this.stderrTail.trim() });
    }
    this.emit("exit", { role: this.role, code, signal, expected, stderrTail: this.stderrTail });
  }

  /** Write if the child is alive; false when it is gone or its pipe is backed up by more than `maxQueued` bytes. */
  write(data: Buffer | Uint8Array, maxQueued = Infinity, done?: () => void): boolean {
    if (this.exited || this.closing || !this.stdin.writable) return false;
    if (this.stdin.writableLength > maxQueued) return false;
    this.stdin.write(data, done ? () => done() : undefined);
    return true;
  }

  /** Ends input and lets ffmpeg flush (graceful), then kills it if it lingers. */
  end(graceMs = 1000): void {
    if (this.closing || this.exited) return;
    this.closing = true;
    this.stdin.end();
    for (const w of this.extraInputs) w.end();
    const t = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    t.unref();
    this.child.once("exit", () => clearTimeout(t));
  }

  /** Stops the child now. */
  close(): void {
    if (this.exited) return;
    this.closing = true;
    this.stdin.destroy();
    for (const w of this.extraInputs) w.destroy();
    this.child.kill("SIGKILL");
  }
}

/** Children still running (for tests and shutdown). */
export function liveFfmpegProcesses(): FfmpegProcess[] {
  return [...live];
}

process.once("exit", () => {
  for (const p of live) p.close();
});
