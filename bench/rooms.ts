// Several rooms at once, with every room in the server's own process (MEDIA_WORKERS=0: one event
// loop for all) and on media workers (MEDIA_WORKERS=auto: one process per core), alternated in one
// run on the same machine: the server tree's CPU (and by role), what each receiver gets (composite
// frames a second, its longest gap between frames, audio packets a second), and what the server
// counted as late (compositor ticks left out, audio ticks caught up after a stall, or skipped).
// The synthetic participants run in this process, on the same cores: it measures one machine, as
// a small server would be used. Run:
//   npm run bench:rooms [-- --rooms 3 --participants 4 --duration 15 --warmup 8 --rounds 2 --size 1280x720]
import os from "node:os";
import { parseArgs } from "node:util";
import { fixturePaths, PARTICIPANTS } from "../fixtures/participants.ts";
import { generateFixtures } from "../fixtures/generate.ts";
import { SyntheticParticipant } from "../test/support/SyntheticParticipant.ts";
import { installCleanup } from "./children.ts";
import { TreeSampler } from "./proctree.ts";
import { serverRole } from "./roles.ts";
import { startServerProcess } from "./server.ts";

const { values: args } = parseArgs({ options: {
  rooms: { type: "string", default: "3" },
  participants: { type: "string", default: "4" },
  duration: { type: "string", default: "15" },
  warmup: { type: "string", default: "8" },
  rounds: { type: "string", default: "2" },
  size: { type: "string", default: "1280x720" },
  modes: { type: "string", default: "0,auto" },
} });
const rooms = Number(args.rooms);
const n = Number(args.participants);
const durationS = Number(args.duration);
const warmupS = Number(args.warmup);
const modes = args.modes.split(",");
const sleep = (s: number) => new Promise((r) => setTimeout(r, s * 1000));

interface Result {
  mode: string;
  cores: number;
  byRole: Record<string, number>;
  /** Per receiver, over the window. */
  fps: number[];
  gapMs: number[];
  audioPps: number[];
  lateTicks: number;
  audioCaughtUp: number;
  audioSkipped: number;
}

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;
const gapOf = (ts: number[], from: number, to: number) => {
  const w = ts.filter((t) => t >= from && t < to);
  let g = w.length ? Math.max(w[0]! - from, to - w[w.length - 1]!) : to - from;
  for (let i = 1; i < w.length; i++) g = Math.max(g, w[i]! - w[i - 1]!);
  return g;
};

async function measure(mode: string): Promise<Result> {
  const total = rooms * n;
  const server = await startServerProcess({
    size: args.size, maxParticipants: n,
    env: { MEDIA_WORKERS: mode, MAX_ROOMS_PER_IP: String(rooms + 1), MAX_JOINS_PER_IP: String(total + 8), MAX_PARTICIPANTS_TOTAL: String(total + 8) },
  });
  const parts: SyntheticParticipant[] = [];
  try {
    for (let r = 0; r < rooms; r++) {
      for (let k = 0; k < n; k++) {
        const id = PARTICIPANTS[(r * n + k) % PARTICIPANTS.length]!.id;
        const p = new SyntheticParticipant({ url: server.url, room: `room${r}`, name: `r${r}-${k}`, ...fixturePaths(id, "pattern"), decode: false });
        await p.join();
        parts.push(p);
      }
    }
    await sleep(warmupS);
    const m0 = await server.metrics();
    const sampler = new TreeSampler(server.pid, serverRole(server.pid));
    sampler.start();
    const t0 = performance.now();
    await sleep(durationS);
    const t1 = performance.now();
    const usage = sampler.stop();
    const m1 = await server.metrics();
    const d = (k: string) => (m1[k] ?? 0) - (m0[k] ?? 0);
    const wall = (t1 - t0) / 1000;
    return {
      mode,
      cores: usage.cores,
      byRole: usage.byRole,
      fps: parts.map((p) => p.frameTimes.filter((t) => t >= t0 && t < t1).length / wall),
      gapMs: parts.map((p) => gapOf(p.frameTimes, t0, t1)),
      audioPps: parts.map((p) => p.audioPacketTimes.filter((t) => t >= t0 && t < t1).length / wall),
      lateTicks: d("mcu_composite_late_ticks_total"),
      audioCaughtUp: d("mcu_audio_ticks_caught_up_total"),
      audioSkipped: d("mcu_audio_ticks_skipped_total"),
    };
  } finally {
    await Promise.all(parts.map((p) => Promise.race([p.close().catch(() => {}), sleep(3)])));
    await server.stop();
  }
}

const fmt = (r: Result) =>
  `${r.mode.padEnd(5)} server ${r.cores.toFixed(2)} cores (${(r.cores / (rooms * n)).toFixed(3)}/participant); ` +
  `fps median ${quantile(r.fps, 0.5).toFixed(1)} min ${Math.min(...r.fps).toFixed(1)}; ` +
  `longest frame gap median ${quantile(r.gapMs, 0.5).toFixed(0)} ms, worst ${Math.max(...r.gapMs).toFixed(0)} ms; ` +
  `audio ${Math.min(...r.audioPps).toFixed(1)}–${Math.max(...r.audioPps).toFixed(1)} packets/s; ` +
  `late compositor ticks ${r.lateTicks}, audio ticks caught up ${r.audioCaughtUp}, skipped ${r.audioSkipped}`;

installCleanup();
await generateFixtures();
console.log(`${rooms} rooms × ${n} participants (${args.size}), ${os.availableParallelism()} cores, ${durationS} s windows after ${warmupS} s, modes alternated ${args.rounds}× (MEDIA_WORKERS=${modes.join(" | ")})`);
const results: Result[] = [];
for (let round = 0; round < Number(args.rounds); round++) {
  for (const mode of round % 2 ? [...modes].reverse() : modes) {
    const r = await measure(mode);
    results.push(r);
    console.log(`  round ${round + 1}: ${fmt(r)}`);
    console.log(`    by role (cores): ${Object.entries(r.byRole).filter(([, c]) => c >= 0.005).sort((a, b) => b[1] - a[1]).map(([k, c]) => `${k} ${c.toFixed(2)}`).join(", ")}`);
  }
}
console.log("summary (median over rounds; ratio: this mode / the first):");
const med = (xs: number[]) => quantile(xs, 0.5);
const base = results.filter((r) => r.mode === modes[0]);
for (const mode of modes) {
  const rs = results.filter((r) => r.mode === mode);
  const row = {
    cores: med(rs.map((r) => r.cores)),
    minFps: med(rs.map((r) => Math.min(...r.fps))),
    worstGap: med(rs.map((r) => Math.max(...r.gapMs))),
    late: med(rs.map((r) => r.lateTicks)),
  };
  const b = { cores: med(base.map((r) => r.cores)), minFps: med(base.map((r) => Math.min(...r.fps))), worstGap: med(base.map((r) => Math.max(...r.gapMs))) };
  console.log(`  MEDIA_WORKERS=${mode}: ${row.cores.toFixed(2)} cores (×${(row.cores / b.cores).toFixed(2)}), min fps ${row.minFps.toFixed(1)} (×${(row.minFps / b.minFps).toFixed(2)}), ` +
    `worst frame gap ${row.worstGap.toFixed(0)} ms (×${(row.worstGap / b.worstGap).toFixed(2)}), late compositor ticks ${row.late}`);
}
process.exit(0);
