// Spawning a child from Node forks the whole process: the kernel copies the page tables of every
// mapped page before the child can exec. A media server holds hundreds of MB to GBs (decoded
// canvases, werift's buffers, V8's heap), and each fork froze the event loop for 20–100 ms,
// every room's frames with it, and a layout change or a join spawns several decoders at once.
//
// The spawn host is a small Node process (about 40 MB, started once, while we are still small).
// It spawns ffmpeg children for us and hands their pipes back over its IPC channel (the file
// descriptors themselves, so media never passes through it). We keep reading and writing the
// children's pipes directly, and it only reports their pid and exit. If we die, its IPC channel
// closes and it kills every child it started. If it dies, we treat its children as dead, kill them,
// and start another host at the next spawn.
import { spawn, type ChildProcess } from "node:child_process";
import type { Socket } from "node:net";
import { logger } from "../telemetry/log.ts";

const log = logger("spawn-host");

// Runs in the host, as plain CommonJS (`node -e`): no loader and no project code, so the host
// stays small and forks quickly.
const HOST_SOURCE = `
const { spawn } = require("node:child_process");
const os = require("node:os");
const kids = new Map();
const send = (m, h) => { if (process.connected) process.send(m, h); };
process.on("message", (m) => {
  if (m.t === "kill") return void kids.get(m.id)?.kill(m.signal);
  if (m.t !== "spawn") return;
  let c;
  try {
    c = spawn(m.cmd, m.args, { stdio: Array(m.fds).fill("pipe"), env: { ...process.env, ...m.env } });
  } catch (e) {
    return send({ t: "error", id: m.id, message: String((e && e.message) || e) });
  }
  c.on("error", (e) => { kids.delete(m.id); send({ t: "error", id: m.id, message: e.message }); });
  if (c.pid === undefined) return;
  kids.set(m.id, c);
  c.on("exit", (code, signal) => { kids.delete(m.id); send({ t: "exit", id: m.id, code, signal }); });
  // Node starts reading a child's pipes as it spawns; stop that before the loop turns, or a byte
  // the child writes at once would be read here, where nobody wants it.
  for (const s of c.stdio) if (s && s._handle) { s._handle.readStop(); s._handle.reading = false; }
  if (m.nice) { try { os.setPriority(c.pid, m.nice); } catch {} }
  send({ t: "pid", id: m.id, pid: c.pid });
  c.stdio.forEach((s, i) => send({ t: "fd", id: m.id, i }, s));
});
process.on("disconnect", () => { for (const c of kids.values()) c.kill("SIGKILL"); process.exit(0); });
`;

type HostMessage =
  | { t: "pid"; id: number; pid: number }
  | { t: "fd"; id: number; i: number }
  | { t: "exit"; id: number; code: number | null; signal: NodeJS.Signals | null }
  | { t: "error"; id: number; message: string };

/** What the owner of a hosted child hears about it. */
export interface HostedChildEvents {
  pid(pid: number): void;
  /** Pipe `i` of the child (0 stdin, 1 stdout, 2 stderr, 3… the extra ones), ours to read or write. */
  fd(i: number, pipe: Socket): void;
  exit(code: number | null, signal: NodeJS.Signals | null): void;
  error(message: string): void;
}

export interface SpawnRequest {
  cmd: string;
  args: string[];
  /** Pipes: 3 (stdin, stdout, stderr) plus the extra ones. */
  fds: number;
  /** Added to the host's environment (which is ours). */
  env?: Record<string, string>;
  /** A nice value for the child (post-processing runs below live media). */
  nice?: number;
}

export interface HostedChild {
  kill(signal: NodeJS.Signals): void;
}

class SpawnHost {
  private readonly proc: ChildProcess;
  private readonly children = new Map<number, { pid?: number; on: HostedChildEvents }>();
  private nextId = 1;
  private dead = false;

  constructor() {
    const env = { ...process.env };
    delete env.NODE_OPTIONS; // no loaders in the host: it runs plain JavaScript
    this.proc = spawn(process.execPath, ["-e", HOST_SOURCE], { stdio: ["ignore", "ignore", "inherit", "ipc"], env });
    this.proc.on("message", (m: HostMessage, handle?: Socket) => this.onMessage(m, handle));
    this.proc.on("exit", (code, signal) => this.onDeath(`exited (code ${code}, signal ${signal})`));
    this.proc.on("error", (err) => this.onDeath(err.message));
    this.idle();
  }

  spawn(req: SpawnRequest, on: HostedChildEvents): HostedChild {
    const id = this.nextId++;
    this.children.set(id, { on });
    this.busy();
    this.proc.send({ t: "spawn", id, ...req });
    return {
      kill: (signal) => {
        if (!this.children.has(id) || this.dead) return;
        this.proc.send({ t: "kill", id, signal });
      },
    };
  }

  private onMessage(m: HostMessage, handle?: Socket): void {
    const c = this.children.get(m.id);
    if (!c) {
      handle?.destroy();
      return;
    }
    if (m.t === "pid") {
      c.pid = m.pid;
      c.on.pid(m.pid);
    } else if (m.t === "fd") {
      if (handle) c.on.fd(m.i, handle);
    } else {
      this.children.delete(m.id);
      if (this.children.size === 0) this.idle();
      if (m.t === "exit") c.on.exit(m.code, m.signal);
      else c.on.error(m.message);
    }
  }

  /** The host is gone: its children can no longer be watched, so they are stopped and reported dead. */
  private onDeath(why: string): void {
    if (this.dead) return;
    this.dead = true;
    if (host === this) host = undefined;
    if (this.children.size) log.warn("spawn host died; stopping its ffmpeg children", { why, children: this.children.size });
    for (const [, c] of this.children) {
      if (c.pid) {
        try {
          process.kill(c.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      c.on.exit(null, "SIGKILL");
    }
    this.children.clear();
  }

  // The host keeps this process alive only while it runs children for it.
  private busy(): void {
    this.proc.ref();
    this.proc.channel?.ref();
  }

  private idle(): void {
    this.proc.unref();
    this.proc.channel?.unref();
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }
}

let host: SpawnHost | undefined;

/** Spawns through the host (started on first use, and again after it died). */
export function spawnHosted(req: SpawnRequest, on: HostedChildEvents): HostedChild {
  host ??= new SpawnHost();
  return host.spawn(req, on);
}

/** The host's pid, if it runs (for tests and diagnostics). */
export function spawnHostPid(): number | undefined {
  return host?.pid;
}
