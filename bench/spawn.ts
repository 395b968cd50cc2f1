// What starting an ffmpeg child costs the event loop, in a process as big as a busy server:
// forked from this process (the baseline, how Node spawns) against started by the spawn host
// (mixer/spawnHost.ts). Each round holds `--mb` of touched memory, starts `--spawns` short ffmpeg
// runs one after another on a timer and records, per spawn, how long the call blocked this
// thread and the worst event-loop delay seen meanwhile. Rounds alternate, so both see the same
// machine.
// Usage: node --import tsx bench/spawn.ts [--mb 1024] [--spawns 20] [--rounds 2]
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { FfmpegProcess, setFfmpegSpawning } from "../mixer/FfmpegProcess.ts";
import { loadConfig } from "../server/config.ts";

const { values: a } = parseArgs({ options: {
  mb: { type: "string", default: "1024" },
  spawns: { type: "string", default: "20" },
  rounds: { type: "string", default: "2" },
} });
const mb = Number(a.mb), spawns = Number(a.spawns), rounds = Number(a.rounds);
const ffmpeg = loadConfig().ffmpegPath;

// Touched memory, as a server's decoded frames and buffers are: every page mapped and resident.
const ballast: Buffer[] = [];
for (let i = 0; i < mb; i += 64) ballast.push(Buffer.alloc(64 << 20, i & 0xff));

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const ms = (x: number) => x.toFixed(1).padStart(7);

async function round(via: "host" | "direct"): Promise<{ call: number[]; lagMax: number }> {
  setFfmpegSpawning(via);
  // Warm: the host starts on first use, which is itself one fork.
  await new Promise((r) => new FfmpegProcess(ffmpeg, "bench", ["-version"], 0, 0, { oneShot: true }).once("exit", r));
  const call: number[] = [];
  const lag = monitorEventLoopDelay({ resolution: 1 });
  lag.enable();
  for (let i = 0; i < spawns; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const t0 = performance.now();
    new FfmpegProcess(ffmpeg, "bench", ["-f", "lavfi", "-i", "nullsrc=s=16x16:d=0.1", "-f", "null", "-"], 0, 0, { oneShot: true });
    call.push(performance.now() - t0);
  }
  await new Promise((r) => setTimeout(r, 500));
  lag.disable();
  return { call, lagMax: lag.max / 1e6 };
}

const rows: Record<"direct" | "host", { call: number[]; lagMax: number[] }> = { direct: { call: [], lagMax: [] }, host: { call: [], lagMax: [] } };
for (let r = 0; r < rounds; r++) {
  for (const via of ["direct", "host"] as const) {
    const x = await round(via);
    rows[via].call.push(...x.call);
    rows[via].lagMax.push(x.lagMax);
  }
}
const rss = process.memoryUsage().rss / 2 ** 20;
console.log(`\nffmpeg spawns from a process of ${rss.toFixed(0)} MB RSS (${spawns} × ${rounds} per way)\n`);
console.log("| way | median call ms | max call ms | worst loop delay ms | median vs direct |");
console.log("|---|---|---|---|---|");
const base = median(rows.direct.call);
for (const via of ["direct", "host"] as const) {
  const x = rows[via];
  console.log(`| ${via === "direct" ? "forked from here (baseline)" : "spawn host"} | ${ms(median(x.call))} | ${ms(Math.max(...x.call))} | ${ms(Math.max(...x.lagMax))} | ${(median(x.call) / base).toFixed(3)} |`);
}
console.log("\nrerun: npm run bench:spawn -- [--mb 1024] [--spawns 20] [--rounds 2]");
ballast.length = 0;
process.exit(0);
