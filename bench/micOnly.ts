// A room of microphones only (no camera anywhere: every tile a named placeholder), before and
// after still composites are encoded once a second instead of 30 times: the server's whole tree
// with STILL_FPS=30 (every tick encoded, as before) and STILL_FPS=1 (the default), interleaved in
// one run, beside ffmpeg alone doing the same audio work (n Opus inputs mixed and encoded once).
// Run: npm run bench:mic-only [-- --participants 24 --duration 10 --rounds 2 --talkers turns|all]
import { parseArgs } from "node:util";
import { fixturePaths, PARTICIPANTS, turnsAudioPath } from "../fixtures/participants.ts";
import { generateFixtures } from "../fixtures/generate.ts";
import { loadConfig } from "../server/config.ts";
import { SyntheticParticipant } from "../test/support/SyntheticParticipant.ts";
import { reapGroup, spawnGroup } from "./children.ts";
import { TreeSampler } from "./proctree.ts";
import { serverRole } from "./roles.ts";
import { startServerProcess } from "./server.ts";

const { values: args } = parseArgs({ options: {
  participants: { type: "string", default: "24" },
  duration: { type: "string", default: "10" },
  warmup: { type: "string", default: "6" },
  rounds: { type: "string", default: "2" },
  talkers: { type: "string", default: "turns" },
} });
const n = Number(args.participants);
const durationS = Number(args.duration);
const warmupS = Number(args.warmup);
const config = loadConfig(process.env);
const sleep = (s: number) => new Promise((r) => setTimeout(r, s * 1000));
/** Each mic's sound: voices taking 2 s turns as in a meeting (default), or everyone at once (--talkers all). */
const audioOf = (k: number) => {
  const id = PARTICIPANTS[k % PARTICIPANTS.length]!.id;
  return { ...fixturePaths(id, "pattern"), ...(args.talkers === "turns" ? { audio: turnsAudioPath(id) } : {}) };
};

async function serverRoom(stillFps: number): Promise<{ cores: number; byRole: Record<string, number>; fps: number }> {
  const server = await startServerProcess({ size: "1280x720", maxParticipants: n, env: { STILL_FPS: String(stillFps), MAX_PARTICIPANTS_TOTAL: String(n + 8) } });
  const parts: SyntheticParticipant[] = [];
  try {
    for (let k = 0; k < n; k++) {
      const p = new SyntheticParticipant({ url: server.url, room: "mics", name: `mic-${k}`, ...audioOf(k), sends: { audio: true, video: false } });
      await p.join();
      parts.push(p);
    }
    await sleep(warmupS);
    const f0 = parts[0]!.frameTimes.length;
    const sampler = new TreeSampler(server.pid, serverRole(server.pid));
    sampler.start();
    await sleep(durationS);
    const u = sampler.stop();
    return { cores: u.cores, byRole: u.byRole, fps: (parts[0]!.frameTimes.length - f0) / u.wallS };
  } finally {
    await Promise.all(parts.map((p) => p.close().catch(() => {})));
    await server.stop();
  }
}

/** ffmpeg alone: the n Opus inputs in real time, mixed and encoded once (no picture at all). */
async function ffmpegAlone(): Promise<number> {
  const inputs = Array.from({ length: n }, (_, k) => ["-stream_loop", "-1", "-re", "-i", audioOf(k).audio]).flat();
  const child = spawnGroup(config.ffmpegPath, ["-hide_banner", "-nostdin", "-loglevel", "error", ...inputs,
    "-filter_complex", `${Array.from({ length: n }, (_, i) => `[${i}:a]`).join("")}amix=inputs=${n}:duration=longest[a]`, "-map", "[a]",
    "-c:a", "libopus", "-b:a", `${config.audioKbps}k`, "-frame_duration", "20", "-application", "voip", "-ac", "1", "-ar", "48000", "-f", "null", "-"], { stdio: "ignore" });
  try {
    await sleep(warmupS);
    const sampler = new TreeSampler(child.pid!);
    sampler.start();
    await sleep(durationS);
    return sampler.stop().cores;
  } finally {
    await reapGroup(child.pid!, child);
  }
}

await generateFixtures();
const rows: { round: number; before: Awaited<ReturnType<typeof serverRoom>>; after: Awaited<ReturnType<typeof serverRoom>>; alone: number }[] = [];
for (let round = 1; round <= Number(args.rounds); round++) {
  const before = await serverRoom(30);
  const after = await serverRoom(1);
  const alone = await ffmpegAlone();
  rows.push({ round, before, after, alone });
  const roles = (r: Record<string, number>) => Object.entries(r).filter(([, c]) => c >= 0.005).map(([k, c]) => `${k} ${c.toFixed(3)}`).join(", ");
  console.log(`  by process, STILL_FPS=30: ${roles(before.byRole)}\n  by process, STILL_FPS=1: ${roles(after.byRole)}`);
  console.log(`round ${round}: STILL_FPS=30 ${before.cores.toFixed(3)} cores (composite ${before.fps.toFixed(1)} fps) · STILL_FPS=1 ${after.cores.toFixed(3)} cores (${after.fps.toFixed(1)} fps) · after/before ${(after.cores / before.cores).toFixed(2)} · ffmpeg alone ${alone.toFixed(3)} · after/alone ${(after.cores / alone).toFixed(2)}`);
}
console.log(`rerun: npm run bench:mic-only -- --participants ${n} --duration ${durationS} --rounds ${args.rounds} --talkers ${args.talkers}`);
process.exit(0);
