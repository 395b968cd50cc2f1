// The server under test as a separate process on a port picked here, with its ffmpeg children in
// its own process group: from source (`node --import tsx server/main.ts`, as `npm start`), or the
// production build (`node dist/server.js`, as the Docker image and `npm run serve`; tsx's loader
// alone is ~55 MB of the process), built first by buildServer().
import { execFileSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { reapGroup, spawnGroup, waitExit } from "./children.ts";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** A free TCP port: listen on port 0, read the port, close. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface ServerOptions {
  size: string;
  maxParticipants: number;
  /** Write a V8 CPU profile (.cpuprofile) of the server into this directory on exit. */
  cpuProfDir?: string;
  /** More environment for the server (e.g. OUTPUT_RUNGS). */
  env?: Record<string, string>;
  /** One node of a cluster: it announces its own URL in this Redis under this prefix. */
  cluster?: { redisUrl: string; prefix: string };
  /** Run dist/server.js (see buildServer) instead of the TypeScript source. */
  built?: boolean;
}

/** `npm run build`: dist/server.js for ServerOptions.built. */
export function buildServer(): void {
  execFileSync("npm", ["run", "-s", "build"], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
}

export interface ServerProcess {
  pid: number;
  url: string;
  /** Warning/error log lines the server printed. */
  logLines: string[];
  metrics(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

export async function startServerProcess(o: ServerOptions): Promise<ServerProcess> {
  const port = await freePort();
  const recordingsDir = fs.mkdtempSync(path.join(os.tmpdir(), "mixroom-bench-recordings-"));
  const url = `http://127.0.0.1:${port}`;
  // BENCH_SERVER_NODE_FLAGS (e.g. "--trace-gc"): more flags for the server's node, which its media
  // workers inherit; BENCH_SERVER_LOG: a file to append everything the server prints to.
  const extraFlags = process.env.BENCH_SERVER_NODE_FLAGS?.split(" ").filter(Boolean) ?? [];
  const nodeArgs = [...(o.cpuProfDir ? ["--cpu-prof", "--cpu-prof-dir", o.cpuProfDir] : []), ...extraFlags];
  const entry = o.built ? ["--enable-source-maps", "dist/server.js"] : ["--import", "tsx", "server/main.ts"];
  const child: ChildProcess = spawnGroup(process.execPath, [...nodeArgs, ...entry], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      PORT: String(port),
      HOST: "127.0.0.1",
      OUTPUT_SIZE: o.size,
      LOG_LEVEL: "warn",
      MAX_PARTICIPANTS: String(Math.max(16, o.maxParticipants)),
      // Every synthetic participant comes from 127.0.0.1: the per-address caps must not count them out.
      MAX_JOINS_PER_IP: String(Math.max(24, o.maxParticipants + 8)),
      MAX_PARTICIPANTS_TOTAL: String(Math.max(64, o.maxParticipants + 8)),
      // The recording point's files go to a scratch folder that stop() removes; embedded post-processing.
      RECORDINGS_DIR: recordingsDir,
      REDIS_URL: "",
      ...(o.cluster ? { REDIS_URL: o.cluster.redisUrl, NODE_URL: url, CLUSTER_PREFIX: o.cluster.prefix, QUEUE_PREFIX: o.cluster.prefix, NODE_MAX_CPU: "1", POSTPROCESS_WORKER: "off" } : {}),
      ...o.env,
    },
  });
  const logLines: string[] = [];
  let pending = "";
  const onLog = (d: Buffer) => {
    pending += d.toString();
    const lines = pending.split("\n");
    pending = lines.pop()!;
    for (const l of lines) if (l.trim() && logLines.length < 200) logLines.push(l);
    if (process.env.BENCH_SERVER_LOG) fs.appendFileSync(process.env.BENCH_SERVER_LOG, lines.join("\n") + "\n");
  };
  child.stdout!.on("data", onLog);
  child.stderr!.on("data", onLog);
  let exited = false;
  child.once("exit", () => (exited = true));

  const stop = async () => {
    // SIGTERM lets the server close its rooms (and write a CPU profile); then the group is reaped.
    if (!exited) {
      child.kill("SIGTERM");
      await waitExit(child, o.cpuProfDir ? 15_000 : 5000);
    }
    await reapGroup(child.pid!, child);
    fs.rmSync(recordingsDir, { recursive: true, force: true });
  };

  const t0 = Date.now();
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`server exited during startup:\n${logLines.slice(-20).join("\n")}`);
    }
    try {
      const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() - t0 > 30_000) {
      await stop();
      throw new Error(`server not healthy within 30 s:\n${logLines.slice(-20).join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    pid: child.pid!,
    url,
    logLines,
    async metrics() {
      const out: Record<string, number> = {};
      try {
        const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
        for (const line of text.split("\n")) {
          const m = /^(mcu_\S+) (\S+)$/.exec(line);
          if (m) out[m[1]] = Number(m[2]);
        }
      } catch {
        // metrics are informative only
      }
      return out;
    },
    stop,
  };
}
