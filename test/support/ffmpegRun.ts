// Test helpers: run ffmpeg to completion on a buffer, and a reproducible PRNG for chunk splits.
import { spawn } from "node:child_process";
import { loadConfig } from "../../server/config.ts";

export const FFMPEG = loadConfig().ffmpegPath;

export function runFfmpeg(args: string[], input?: Buffer): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(FFMPEG, ["-hide_banner", ...(input ? [] : ["-nostdin"]), ...args]);
    const out: Buffer[] = [];
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => out.push(d));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.stdin.on("error", () => {}); // EPIPE if ffmpeg bails early; the exit code tells
    p.on("error", reject);
    p.on("close", (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
    p.stdin.end(input);
  });
}

/** Deterministic PRNG so chunk splits are reproducible. */
export function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
