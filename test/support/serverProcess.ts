// The server and the post-processing worker as real OS processes, for tests that kill them
// (SIGKILL of the whole process group: Node and its ffmpeg children, as a crash would).
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface ChildService {
  proc: ChildProcess;
  /** The server's URL (servers only). */
  url: string;
  log: () => string;
  /** SIGKILL to the process and every child it started. */
  killGroup(): Promise<void>;
  /** SIGTERM, then wait for it to exit. */
  stop(): Promise<void>;
}

function start(entry: string, env: Record<string, string>, readyMsg: string, nodeArgs = ["--import", "tsx"]): Promise<ChildService> {
  const proc = spawn(process.execPath, [...nodeArgs, entry], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: "info", PORT: "0", HOST: "127.0.0.1", ...env },
    stdio: ["ignore", "ignore", "pipe"],
    detached: true, // its own process group, so a kill reaches its ffmpeg children too
  });
  let log = "";
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${entry} not ready after 30 s:\n${log.slice(-3000)}`)), 30_000);
    proc.stderr!.on("data", (d: Buffer) => {
      const before = log.length;
      log += d.toString();
      for (const line of log.slice(Math.max(0, before - 500)).split("\n")) {
        if (!line.includes(`"msg":"${readyMsg}"`)) continue;
        clearTimeout(timer);
        const url = /"url":"http:\/\/[^:]+:(\d+)"/.exec(line);
        resolve({
          proc,
          url: url ? `http://127.0.0.1:${url[1]}` : "",
          log: () => log,
          async killGroup() {
            try {
              process.kill(-proc.pid!, "SIGKILL");
            } catch {
              // already gone
            }
            await exited;
          },
          async stop() {
            proc.kill("SIGTERM");
            await exited;
          },
        });
        return;
      }
    });
    proc.once("exit", (code) => reject(new Error(`${entry} exited (${code}) before it was ready:\n${log.slice(-3000)}`)));
  });
}

export const startServerProcess = (env: Record<string, string>) => start("server/main.ts", env, "listening");
/** The compiled server (npm run build), with TypeScript, esbuild and tsx forbidden to load. */
export const startBuiltServerProcess = (env: Record<string, string>) =>
  start("dist/server.js", env, "listening", ["--import", "./test/support/forbidDevModules.mjs", "--enable-source-maps"]);
export const startWorkerProcess = (env: Record<string, string>) => start("server/worker.ts", env, "worker ready");
