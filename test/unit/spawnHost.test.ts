// ffmpeg children started through the spawn host (mixer/spawnHost.ts) behave as children forked
// by us: pipes both ways (extra ones too), writes before the pipes arrive, exits and deaths, kills,
// a missing binary; and no child outlives either side: the host's death stops its children, and
// ours stops the host's.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FfmpegProcess, liveFfmpegProcesses, runFfmpegOnce, setFfmpegSpawning, type FfmpegExit } from "../../mixer/FfmpegProcess.ts";
import { spawnHostPid } from "../../mixer/spawnHost.ts";
import { FFMPEG } from "../support/ffmpegRun.ts";

/** Running (a zombie waiting for an init that does not reap counts as gone). */
const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
};

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** 1 s of a ramp as s16le mono: enough to tell bytes apart after a round trip. */
const pcm = Buffer.from(Int16Array.from({ length: 8000 }, (_, i) => (i * 7) % 30000 - 15000).buffer);
const copyArgs = (input: string, output: string) => ["-f", "s16le", "-ar", "8000", "-ac", "1", "-i", input, "-c:a", "pcm_s16le", "-f", "s16le", output];

function collect(p: { on(e: "data", f: (d: Buffer) => void): unknown }): () => Buffer {
  const chunks: Buffer[] = [];
  p.on("data", (d) => chunks.push(d));
  return () => Buffer.concat(chunks);
}

describe.each(["host", "direct"] as const)("ffmpeg children spawned %s", (via) => {
  afterEach(() => setFfmpegSpawning("host"));

  it("pipes bytes both ways, written before the pipes arrived, and exits with code 0", async () => {
    setFfmpegSpawning(via);
    const p = new FfmpegProcess(FFMPEG, "test-copy", copyArgs("pipe:0", "pipe:1"));
    const out = collect(p.stdout);
    expect(p.write(pcm)).toBe(true); // at once, before the host has answered
    p.end(5000);
    const [exit] = (await once(p, "exit")) as [FfmpegExit];
    await p.outputsRead;
    expect(exit).toMatchObject({ code: 0, expected: true });
    expect(out().equals(pcm)).toBe(true);
    expect(liveFfmpegProcesses()).not.toContain(p);
  });

  it("serves extra input and output pipes", async () => {
    setFfmpegSpawning(via);
    // pipe:3 in, pipe:4 out (ffmpeg's numbering); stdin unused.
    const p = new FfmpegProcess(FFMPEG, "test-extra", copyArgs("pipe:3", "pipe:4"), 1, 1);
    const out = collect(p.extraOutputs[0]!);
    p.extraInputs[0]!.write(pcm);
    p.end(5000);
    const [exit] = (await once(p, "exit")) as [FfmpegExit];
    await new Promise<void>((r) => (p.extraOutputs[0]!.closed ? r() : p.extraOutputs[0]!.once("close", () => r())));
    expect(exit.code).toBe(0);
    expect(out().equals(pcm)).toBe(true);
  });

  it("reports a death it did not ask for, with its signal and pid", async () => {
    setFfmpegSpawning(via);
    const p = new FfmpegProcess(FFMPEG, "test-victim", ["-f", "lavfi", "-i", "sine=d=60", "-f", "null", "-"]);
    const pid = await p.started;
    expect(pid).toBeGreaterThan(0);
    process.kill(pid!, "SIGKILL");
    const [exit] = (await once(p, "exit")) as [FfmpegExit];
    expect(exit).toMatchObject({ signal: "SIGKILL", expected: false, role: "test-victim" });
  });

  it("kills on close(), and a one-shot run reports its output and code", async () => {
    setFfmpegSpawning(via);
    const p = new FfmpegProcess(FFMPEG, "test-closed", ["-f", "lavfi", "-i", "sine=d=60", "-f", "null", "-"]);
    const pid = (await p.started)!;
    p.close();
    const [exit] = (await once(p, "exit")) as [FfmpegExit];
    expect(exit).toMatchObject({ signal: "SIGKILL", expected: true });
    expect(alive(pid)).toBe(false);
    const r = await runFfmpegOnce(FFMPEG, "test-once", ["-f", "lavfi", "-i", "color=c=red:s=4x2:d=0.04", "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]);
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBe(4 * 2 * 3);
    expect(r.stdout[0]).toBeGreaterThan(200); // red
    expect(r.stdout[1]! + r.stdout[2]!).toBeLessThan(40);
  });

  it("hands over every byte a child writes at once, before its pipes reach us", async () => {
    setFfmpegSpawning(via);
    // A frame written the instant ffmpeg starts, ten at a time: any byte read on the way is missing.
    const frame = ["-f", "lavfi", "-i", "color=c=gray:s=1280x720:d=0.04", "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"];
    const runs = await Promise.all(Array.from({ length: 10 }, () => runFfmpegOnce(FFMPEG, "test-burst", frame, { maxStdout: 4 << 20 })));
    for (const r of runs) expect(r.stdout.length).toBe(1280 * 720 * 1.5);
  });

  it("says a missing binary could not start, and is gone", async () => {
    setFfmpegSpawning(via);
    const p = new FfmpegProcess("/nonexistent/ffmpeg", "test-missing", []);
    const [exit] = (await once(p, "exit")) as [FfmpegExit];
    await p.outputsRead;
    expect(exit.stderrTail).toMatch(/spawn error: .*ENOENT/);
    expect(await p.started).toBeUndefined();
    expect(liveFfmpegProcesses()).not.toContain(p);
  });
});

describe("the spawn host", () => {
  it("stops its children when it dies, reports them dead, and a new host takes the next spawn", async () => {
    const a = new FfmpegProcess(FFMPEG, "test-orphan", ["-f", "lavfi", "-i", "sine=d=60", "-f", "null", "-"]);
    const pid = (await a.started)!;
    const host = spawnHostPid()!;
    process.kill(host, "SIGKILL");
    const [exit] = (await once(a, "exit")) as [FfmpegExit];
    expect(exit).toMatchObject({ signal: "SIGKILL", expected: false });
    await until("the orphan is gone", () => !alive(pid));
    const b = new FfmpegProcess(FFMPEG, "test-next", ["-f", "lavfi", "-i", "sine=d=60", "-f", "null", "-"]);
    expect(await b.started).toBeGreaterThan(0);
    expect(spawnHostPid()).not.toBe(host);
    b.close();
    await once(b, "exit");
  });

  it("stops every child when the process that asked for them is killed", async () => {
    // A separate Node process starts a child through its own host, prints the pids, and is SIGKILLed.
    const script = `
      import { FfmpegProcess } from ${JSON.stringify(path.resolve("mixer/FfmpegProcess.ts"))};
      import { spawnHostPid } from ${JSON.stringify(path.resolve("mixer/spawnHost.ts"))};
      const p = new FfmpegProcess(${JSON.stringify(FFMPEG)}, "test-abandoned", ["-f", "lavfi", "-i", "sine=d=60", "-f", "null", "-"]);
      const pid = await p.started;
      console.log(JSON.stringify({ child: pid, host: spawnHostPid() }));
      setInterval(() => {}, 1000);
    `;
    const owner = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    const [line] = (await once(owner.stdout, "data")) as [Buffer];
    const { child, host } = JSON.parse(line.toString()) as { child: number; host: number };
    expect(alive(child) && alive(host)).toBe(true);
    owner.kill("SIGKILL");
    await until("the host and its child are gone", () => !alive(child) && !alive(host));
  });
});
