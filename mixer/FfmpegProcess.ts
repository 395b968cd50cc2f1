// Every ffmpeg this process runs goes through here, so "which ffmpeg children are alive" has one
// answer (liveFfmpegProcesses) and one cleanup at exit. FfmpegProcess: one long-lived child with
// exactly one owner, spawned with pipes, closed by close(), and an 'exit' that says whether it was
// asked to stop or died (with the tail of its stderr). runFfmpegOnce: a run to completion (a text
// render, a post-processing step, a probe) with a timeout, an abort signal and its output.
import { spawn, type ChildProcess } from "node:child_process";
import os from "node:os";
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { spawnHosted } from "./spawnHost.ts";
import { logger } from "../telemetry/log.ts";
import { metrics } from "../telemetry/metrics.ts";

const log = logger("ffmpeg");

/**
 * glibc's malloc in the (static) bundled ffmpeg gives every raw frame over 128 KiB its own mmap and
 * hands it back at free: a page fault per 4 KiB of every 720p canvas read or encoded. Keeping such
 * buffers on the heap (and the heap from shrinking) cut a 720p x264 encode from 1.9 to 1.2 CPU-s
 * per 10 s on this machine type, and the read of a raw pipe to a tenth (README, Benchmark: "Codecs and rungs").
 */
export const FFMPEG_MALLOC_ENV = { MALLOC_MMAP_THRESHOLD_: String(4 << 20), MALLOC_TRIM_THRESHOLD_: String(32 << 20) };
const live = new Set<FfmpegProcess>();

export interface FfmpegOptions {
  /** ffmpeg's -loglevel (default error: only what went wrong reaches the stderr tail). */
  logLevel?: string;
  /** A run meant to end by itself: its exit, whatever the code, is for the caller to judge (not logged or counted as a death). */
  oneShot?: boolean;
  /** A nice value for the child (10: below live media in CPU priority). */
  nice?: number;
}

export interface FfmpegExit {
  role: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when close() asked for it; false means it died on its own. */
  expected: boolean;
  stderrTail: string;
}

/** How children are started: through the spawn host (default), or forked from this process. */
let spawnVia: "host" | "direct" = "host";
export function setFfmpegSpawning(via: "host" | "direct"): void {
  spawnVia = via;
}

/** A child's input pipe, usable at once: what is written before the pipe itself arrives waits here. */
export class InputPipe {
  private sock?: Socket;
  private pending: { data: Buffer | Uint8Array; done?: () => void }[] = [];
  private pendingBytes = 0;
  private ended = false;
  private destroyed = false;

  get writable(): boolean {
    return !this.ended && !this.destroyed && (this.sock ? this.sock.writable : true);
  }

  /** Bytes queued towards the child and not taken by it yet. */
  get writableLength(): number {
    return this.sock ? this.sock.writableLength : this.pendingBytes;
  }

  write(data: Buffer | Uint8Array, done?: () => void): void {
    if (!this.writable) return;
    if (this.sock) {
      this.sock.write(data, done ? () => done() : undefined);
      return;
    }
    this.pending.push({ data, done });
    this.pendingBytes += data.byteLength;
  }

  end(): void {
    this.ended = true;
    this.sock?.end();
  }

  destroy(): void {
    this.destroyed = true;
    this.pending = [];
    this.sock?.destroy();
  }

  attach(sock: Socket): void {
    this.sock = sock;
    sock.on("error", () => {}); // EPIPE after the child died: its exit says what happened
    if (this.destroyed) return void sock.destroy();
    for (const { data, done } of this.pending) sock.write(data, done ? () => done() : undefined);
    this.pending = [];
    this.pendingBytes = 0;
    if (this.ended) sock.end();
  }
}

/** A child's output pipe: 'data' as the child writes, 'close' once it is read to its end. */
export class OutputPipe extends EventEmitter<{ data: [Buffer]; close: [] }> {
  closed = false;

  attach(sock: Socket): void {
    sock.on("error", () => {});
    sock.on("data", (d: Buffer) => this.emit("data", d));
    sock.once("close", () => this.finish());
  }

  /** Nothing more will come (read to the end, or the child never started). */
  finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit("close");
  }
}

export class FfmpegProcess extends EventEmitter<{ exit: [FfmpegExit] }> {
  private readonly child: { kill(signal: NodeJS.Signals): void };
  private closing = false;
  private exited = false;
  private stderrTail = "";
  private childPid?: number;
  private readonly stderr = new OutputPipe();
  private readonly pipes: (InputPipe | OutputPipe)[];
  readonly stdin = new InputPipe();
  readonly stdout = new OutputPipe();
  /** Input pipes beyond stdin: extraInputs[0] is `pipe:3`, [1] is `pipe:4`, … */
  readonly extraInputs: InputPipe[];
  /** Output pipes after the extra inputs: with no extra inputs, extraOutputs[0] is `pipe:3`. */
  readonly extraOutputs: OutputPipe[];
  /** Resolves with the pid once the child runs (undefined if it could not start). */
  readonly started: Promise<number | undefined>;
  private onStarted!: (pid: number | undefined) => void;

  constructor(
    ffmpegPath: string,
    readonly role: string,
    args: string[],
    extraInputCount = 0,
    extraOutputCount = 0,
    private readonly o: FfmpegOptions = {},
  ) {
    super();
    this.extraInputs = Array.from({ length: extraInputCount }, () => new InputPipe());
    this.extraOutputs = Array.from({ length: extraOutputCount }, () => new OutputPipe());
    this.pipes = [this.stdin, this.stdout, this.stderr, ...this.extraInputs, ...this.extraOutputs];
    this.started = new Promise((resolve) => (this.onStarted = resolve));
    this.stderr.on("data", (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString()).slice(-2000);
    });
    const closed = (r: OutputPipe) => new Promise<void>((done) => (r.closed ? done() : r.once("close", () => done())));
    this.outputsRead = Promise.all([closed(this.stdout), closed(this.stderr)]).then(() => this.stderrTail);
    live.add(this);
    const cmdArgs = ["-hide_banner", "-nostdin", "-loglevel", o.logLevel ?? "error", ...args];
    const fds = this.pipes.length;
    this.child = spawnVia === "host" ? this.spawnHosted(ffmpegPath, cmdArgs, fds) : this.spawnDirect(ffmpegPath, cmdArgs, fds);
  }

  private spawnHosted(cmd: string, args: string[], fds: number) {
    return spawnHosted(
      { cmd, args, fds, env: FFMPEG_MALLOC_ENV, nice: this.o.nice },
      {
        pid: (pid) => this.onPid(pid),
        fd: (i, sock) => this.pipes[i]?.attach(sock),
        exit: (code, signal) => this.onExit(code, signal),
        error: (message) => this.onSpawnError(message),
      },
    );
  }

  private spawnDirect(cmd: string, args: string[], fds: number): ChildProcess {
    const c = spawn(cmd, args, { stdio: Array<"pipe">(fds).fill("pipe"), env: { ...process.env, ...FFMPEG_MALLOC_ENV } });
    c.on("error", (err) => this.onSpawnError(err.message));
    if (c.pid === undefined) return c;
    c.on("exit", (code, signal) => this.onExit(code, signal));
    if (this.o.nice) {
      try {
        os.setPriority(c.pid, this.o.nice);
      } catch {
        // not allowed here: normal priority
      }
    }
    this.onPid(c.pid);
    c.stdio.forEach((s, i) => this.pipes[i]?.attach(s as Socket));
    return c;
  }

  /** Resolves once stdout and stderr are read to their end, with the stderr tail ('exit' can come first). */
  readonly outputsRead: Promise<string>;

  get pid(): number | undefined {
    return this.childPid;
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** Asked to stop (end/close) and not gone yet: an encoder draining after a switch, for instance. */
  get stopping(): boolean {
    return this.closing && !this.exited;
  }

  private onPid(pid: number): void {
    this.childPid = pid;
    this.onStarted(pid);
  }

  private onSpawnError(message: string): void {
    this.stderrTail += `\nspawn error: ${message}`;
    // It never ran: nothing will come on its pipes.
    if (this.childPid === undefined) for (const p of this.pipes) if (p instanceof OutputPipe) p.finish();
    this.onExit(null, null);
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exited) return;
    this.exited = true;
    this.onStarted(undefined);
    live.delete(this);
    const expected = this.closing || !!this.o.oneShot;
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
    this.stdin.write(data, done);
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
    this.once("exit", () => clearTimeout(t));
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

let exitCleanup = false;
/** Kills every ffmpeg child when this process exits (the entry points install it; importing does not). */
export function killFfmpegOnExit(): void {
  if (exitCleanup) return;
  exitCleanup = true;
  process.once("exit", () => {
    for (const p of live) p.close();
  });
}

export interface RunOptions extends FfmpegOptions {
  /** Killed after this long in all (ms). */
  timeoutMs?: number;
  /** Killed when its output has been silent this long (ms): a run that hangs rather than ends. */
  idleTimeoutMs?: number;
  signal?: AbortSignal;
  /** Kept stdout bytes at most (beyond: killed, `overflow`); default 1 MiB. */
  maxStdout?: number;
  /** Sees stdout as it comes (progress); then nothing is kept. */
  onStdout?: (chunk: Buffer) => void;
  /** Below live media in CPU priority (post-processing). */
  lowPriority?: boolean;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderrTail: string;
  /** Why it was killed, if it was: timeout, idle, aborted, overflow. */
  killed?: "timeout" | "idle" | "aborted" | "overflow";
}

/** Runs ffmpeg to its end as a registered child; resolves with how it ended (the caller judges the code). */
export function runFfmpegOnce(ffmpegPath: string, role: string, args: string[], o: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const p = new FfmpegProcess(ffmpegPath, role, args, 0, 0, { logLevel: o.logLevel, oneShot: true, nice: o.lowPriority ? 10 : undefined });
    const chunks: Buffer[] = [];
    let kept = 0;
    let killed: RunResult["killed"];
    const kill = (why: NonNullable<RunResult["killed"]>) => {
      killed ??= why;
      p.close();
    };
    const total = o.timeoutMs ? setTimeout(() => kill("timeout"), o.timeoutMs) : undefined;
    const idle = o.idleTimeoutMs ? setTimeout(() => kill("idle"), o.idleTimeoutMs) : undefined;
    const onAbort = () => kill("aborted");
    if (o.signal?.aborted) onAbort();
    o.signal?.addEventListener("abort", onAbort, { once: true });
    p.stdout.on("data", (d: Buffer) => {
      idle?.refresh();
      if (o.onStdout) return o.onStdout(d);
      kept += d.length;
      if (kept > (o.maxStdout ?? 1 << 20)) return kill("overflow");
      chunks.push(d);
    });
    p.once("exit", (e) => {
      clearTimeout(total);
      clearTimeout(idle);
      o.signal?.removeEventListener("abort", onAbort);
      // 'exit' can come before the last of the output is read: answer once it all is in.
      void p.outputsRead.then((stderrTail) => resolve({ code: e.code, signal: e.signal, stdout: Buffer.concat(chunks), stderrTail, killed }));
    });
  });
}
