// CPU benchmark: the server (Node + every ffmpeg child) vs ffmpeg alone doing the same media work.
// Usage: npm run bench -- [--participants 1,2,4,9] [--duration 20] [--warmup 4] [--size 1280x720] [--codec vp8|h264|mixed]
//                         (h264: every camera and composite H.264; mixed: VP8 with half the receivers on the half-size rung)
//                         [--out bench/results] [--idle-wait 60] [--baseline-compose xstack|overlay] [--cpu-prof]
//                         [--talkers turns|all]  (turns: people take 2 s turns, as in a meeting; all: everyone at once)
//                         [--record-at 9]  (at that n, also alternate recording off/on windows: the cost of recording; 0 = off)
//                         [--layout grid|speaker] [--labels on|off]  (the room's layout and name labels)
//                         [--engines library,ffmpeg]  (VIDEO_ENGINE of the server, each measured in the same run; the first is the main table's)
//                         [--server built|source]  (built: dist/server.js, as deployed, the default; source: tsx, as npm start)
//                         [--baselines cli,libs,decode]  (cli: the bundled ffmpeg program alone; libs: the server's own FFmpeg libraries alone,
//                                                          bench/libsAlone.ts; decode: the tile decoders' work alone, the bundled ffmpeg)
// Prints a table and writes <out>/cpu-<time>.json and <out>/cpu-<time>.svg (plot).
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { generateFixtures } from "../fixtures/generate.ts";
import { FIXTURE_FPS, FIXTURE_HEIGHT, FIXTURE_WIDTH, PARTICIPANTS, fixturePaths, h264FixturePath, turnsAudioPath } from "../fixtures/participants.ts";
import { libavVersion } from "../mixer/libav.ts";
import { loadConfig } from "../server/config.ts";
import { SyntheticParticipant } from "../test/support/SyntheticParticipant.ts";
import { startBaseline, startDecodeAlone, startLibsAlone, type BenchCodec, type Compose, type EncodeSettings } from "./baseline.ts";
import { installCleanup } from "./children.ts";
import { formatLatency, measureLatency } from "./latency.ts";
import { formatProfile, summariseProfile } from "./profile.ts";
import { formatRecordingCost, measureRecordingCost } from "./recording.ts";
import { renderSvg } from "./plot.ts";
import { serverRole } from "./roles.ts";
import { CLK_TCK, TreeSampler, machineBusyCores, type TreeUsage } from "./proctree.ts";
import { derive, printMediaPlane, printTables, rtpCounters, rtpWindow, type BaselinePoint, type Geometry, type Point, type ServerPoint } from "./report.ts";
import { buildServer, ROOT, startServerProcess } from "./server.ts";

const { values: args } = (() => {
  try {
    return parseArgs({ options: {
    participants: { type: "string", default: "1,2,4,9" },
    duration: { type: "string", default: "20" },
    warmup: { type: "string", default: "4" },
    size: { type: "string", default: "1280x720" },
    codec: { type: "string", default: "vp8" },
    out: { type: "string", default: "bench/results" },
    "idle-wait": { type: "string", default: "60" },
    "baseline-compose": { type: "string", default: "xstack" },
    "cpu-prof": { type: "boolean", default: false },
    talkers: { type: "string", default: "turns" },
    layout: { type: "string", default: "grid" },
    labels: { type: "string", default: "on" },
    latency: { type: "string", default: "15" },
    "record-at": { type: "string", default: "9" },
    engines: { type: "string", default: "library" },
    baselines: { type: "string", default: "cli,libs,decode" },
    server: { type: "string", default: "built" },
    help: { type: "boolean", short: "h", default: false },
    } });
  } catch (e) {
    return usageError((e as Error).message);
  }
})();
if (args.help) {
  console.log(fs.readFileSync(new URL(import.meta.url), "utf8").split("\n").slice(0, 5).join("\n"));
  process.exit(0);
}
/** Bad flags: a one-line message, no stack trace. */
function usageError(m: string): never {
  console.error(`bench: ${m} (see --help)`);
  process.exit(2);
}
const counts = args.participants.split(",").map((s) => Number(s.trim()));
const durationS = Number(args.duration);
const warmupS = Number(args.warmup);
const sizeMatch = /^(\d+)x(\d+)$/.exec(args.size);
if (!counts.length || counts.some((n) => !Number.isInteger(n) || n < 1 || n > 100)) usageError(`--participants: expected e.g. 1,2,4,9`);
if (!(durationS > 0) || !(warmupS >= 0)) usageError(`--duration/--warmup: expected seconds`);
if (!sizeMatch) usageError(`--size: expected WxH, e.g. 1280x720`);
const codec = args.codec.toLowerCase() as BenchCodec;
if (!["vp8", "h264", "mixed"].includes(codec)) usageError(`--codec: vp8, h264 or mixed, got "${args.codec}"`);
const compose = args["baseline-compose"] as Compose;
const latencyS = codec === "vp8" ? Number(args.latency) : 0;
if (!(latencyS >= 0)) throw new Error(`--latency: seconds of flips to measure per point (0 = off)`);
if (args.talkers !== "turns" && args.talkers !== "all") usageError(`--talkers: turns or all`);
// The recording point and the latency flips are VP8 measurements: only in the VP8 run.
const recordAt = codec === "vp8" ? Number(args["record-at"]) : 0;
if (!Number.isInteger(recordAt) || recordAt < 0) usageError(`--record-at: a participant count (0 = no recording point)`);
const RECORDING_PAIRS = 3;
const RECORDING_WINDOW_S = 10;
if (compose !== "xstack" && compose !== "overlay") usageError(`--baseline-compose: xstack or overlay`);

const BASELINE_NAMES: Record<string, string> = { cli: "ffmpeg alone", libs: "libraries alone", decode: "decode alone" };
const engines = args.engines!.split(",").map((e) => e.trim());
if (!engines.length || engines.some((e) => e !== "library" && e !== "ffmpeg")) usageError(`--engines: library and/or ffmpeg, e.g. library,ffmpeg`);
const baselines = args.baselines!.split(",").map((e) => e.trim());
if (!baselines.length || baselines.some((b) => !["cli", "libs", "decode"].includes(b))) usageError(`--baselines: cli, libs and/or decode`);

if (args.server !== "built" && args.server !== "source") usageError(`--server: built or source`);
const built = args.server === "built";

installCleanup();
const config = loadConfig({ ...process.env, OUTPUT_SIZE: args.size });
/** mixed: a two-rung ladder, the half-size rung for the receivers that ask for `low`. */
const half = config.outputRungs[1]!;
if (!["grid", "speaker"].includes(args.layout!) || !["on", "off"].includes(args.labels!)) usageError("--layout grid|speaker, --labels on|off");
const serverEnv: Record<string, string> = {
  ...(codec === "mixed" ? { OUTPUT_RUNGS: `${config.width}x${config.height}:${config.videoKbps},${half.width}x${half.height}:${half.kbps}` } : {}),
  // The room's layout and labels (the cost of speaker view and labels: compare with --layout grid --labels off).
  LAYOUT: args.layout!, LABELS: args.labels!,
};
const codecLabel = codec === "h264" ? "H.264" : codec === "mixed" ? `VP8 (half the receivers on ${half.width}x${half.height})` : "VP8";
const enc: EncodeSettings = {
  width: config.width, height: config.height, fps: config.fps,
  videoKbps: config.videoKbps, audioKbps: config.audioKbps, keyframeIntervalS: config.keyframeIntervalS, vp8CpuUsed: config.vp8CpuUsed,
  codec, half,
};
const stamp = new Date().toISOString().replace(/[:.]/g, "-");
const outDir = path.resolve(ROOT, args.out);
const sleep = (s: number) => new Promise((r) => setTimeout(r, s * 1000));
const tty = process.stdout.isTTY;
const log = (m: string) => console.log((tty ? "\r\x1b[K" : "") + m);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const inputsFor = (n: number) =>
  Array.from({ length: n }, (_, k) => {
    const id = PARTICIPANTS[k % PARTICIPANTS.length].id;
    const f = fixturePaths(id, "pattern");
    const v = codec === "h264" ? { video: h264FixturePath(id, "pattern") } : {};
    return { ...f, ...v, ...(args.talkers === "turns" ? { audio: turnsAudioPath(id) } : {}) };
  });
/** On a shared machine, waits (up to --idle-wait s) until other processes use under 0.2 cores. */
async function waitIdle(what: string): Promise<void> {
  const t0 = Date.now();
  let said = false;
  for (;;) {
    const busy = await machineBusyCores(1000);
    if (busy < 0.2) return;
    if ((Date.now() - t0) / 1000 >= Number(args["idle-wait"])) {
      log(`  machine still busy (${busy.toFixed(2)} cores used by others); measuring ${what} anyway`);
      return;
    }
    if (!said) log(`  waiting for the machine to go idle (${busy.toFixed(2)} cores used by others)…`);
    said = true;
  }
}
const fmtRoles = (r: Record<string, number>) => Object.entries(r).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(", ");
const withTimeout = <T>(p: Promise<T>, ms: number) => Promise.race([p, sleep(ms / 1000).then(() => undefined)]);

/** Progress: where the run is (set per phase), and the planned warm-up + measurement seconds still ahead. */
let phase = "";
let plannedLeftS = counts.length * (engines.length + baselines.length) * (warmupS + durationS) + (counts.includes(recordAt) ? RECORDING_PAIRS * 2 * RECORDING_WINDOW_S : 0);
const fmtS = (x: number, s = Math.round(x)) => (s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`);
/** Sleeps `s` seconds showing progress: one line rewritten each second on a terminal, else a line every 10 s. */
async function countdown(what: string, s: number): Promise<void> {
  const t0 = Date.now();
  let printed = 0;
  for (let el = 0; el < s; el = (Date.now() - t0) / 1000) {
    const msg = `${phase}: ${what} ${Math.floor(el)}/${s} s (run: ~${fmtS(plannedLeftS - el)} of measuring left, plus setup)`;
    if (tty) process.stdout.write(`\r\x1b[K${msg}`);
    else if (el - printed >= 10) (printed = Math.floor(el)), console.log(`  ${msg}`);
    await sleep(Math.min(1, s - el));
  }
  plannedLeftS -= s;
  if (tty) process.stdout.write("\r\x1b[K");
}

async function measureServer(n: number, engine: string): Promise<ServerPoint> {
  const profDir = args["cpu-prof"] ? path.join(outDir, `prof-${stamp}`, `n${n}-${engine}`) : undefined;
  if (profDir) fs.mkdirSync(profDir, { recursive: true });
  const server = await startServerProcess({ size: args.size, maxParticipants: n, cpuProfDir: profDir, env: { ...serverEnv, VIDEO_ENGINE: engine }, built });
  const parts: SyntheticParticipant[] = [];
  try {
    for (const [k, fx] of inputsFor(n).entries()) {
      const p = new SyntheticParticipant({
        url: server.url, room: "bench", name: `bench-${k}`, ...fx, decode: false,
        ...(codec === "h264" ? { videoCodec: "h264" as const } : {}),
        ...(codec === "mixed" && k % 2 === 1 ? { quality: "low" as const } : {}),
      });
      parts.push(p);
      if (tty) process.stdout.write(`\r\x1b[K${phase}: joining ${k + 1}/${n}`);
      await p.join();
    }
    await countdown("warm-up", warmupS);
    const m0 = await server.metrics();
    const frames0 = parts.map((p) => p.frameTimes.length);
    const bytes0 = parts.map((p) => p.bytesReceived);
    const rtp0 = await Promise.all(parts.map((p) => rtpCounters(p.pc)));
    const c0 = process.cpuUsage();
    const sampler = new TreeSampler(server.pid, serverRole(server.pid));
    sampler.start();
    await countdown("measuring", durationS);
    const usage = sampler.stop();
    const c1 = process.cpuUsage(c0);
    const rtp1 = await Promise.all(parts.map((p) => rtpCounters(p.pc)));
    const m1 = await server.metrics();
    const receivers = parts.map((p, i) => ({
      fps: (p.frameTimes.length - frames0[i]) / usage.wallS,
      downlinkKbps: ((p.bytesReceived - bytes0[i]) * 8) / usage.wallS / 1000,
      rtp: rtpWindow(rtp0[i], rtp1[i]),
    }));
    const metricsDelta: Record<string, number> = {};
    for (const [k, v] of Object.entries(m1)) if (v - (m0[k] ?? 0) !== 0) metricsDelta[k] = v - (m0[k] ?? 0);
    return {
      usage,
      receivers,
      medianFps: median(receivers.map((r) => r.fps)),
      minFps: Math.min(...receivers.map((r) => r.fps)),
      downlinkKbps: receivers.reduce((a, r) => a + r.downlinkKbps, 0) / receivers.length,
      clientCores: (c1.user + c1.system) / 1e6 / usage.wallS,
      otherCores: otherCores(usage, c1),
      metricsDelta,
      overloadLevel: m1["mcu_overload_level"],
      serverLog: server.logLines,
      recording: n === recordAt && engine === engines[0]
        ? await measureRecordingCost({
          url: server.url, room: "bench", serverPid: server.pid, classify: serverRole(server.pid),
          pairs: RECORDING_PAIRS, windowS: RECORDING_WINDOW_S, countdown,
        })
        : undefined,
    };
  } finally {
    await Promise.all(parts.map((p) => withTimeout(p.close().catch(() => {}), 3000)));
    await server.stop();
  }
}

async function measureBaseline(n: number, kind: string): Promise<BaselinePoint> {
  const ff = kind === "libs" ? startLibsAlone(inputsFor(n), enc) : kind === "decode" ? startDecodeAlone(config.ffmpegPath, inputsFor(n), enc) : startBaseline(config.ffmpegPath, inputsFor(n), enc, compose);
  try {
    await countdown("warm-up", warmupS);
    const f0 = ff.frames();
    const c0 = process.cpuUsage();
    const sampler = new TreeSampler(ff.pid);
    sampler.start();
    await countdown("measuring", durationS);
    const usage = sampler.stop();
    return { usage, outputFps: (ff.frames() - f0) / usage.wallS, otherCores: otherCores(usage, process.cpuUsage(c0)) };
  } finally {
    await ff.stop();
  }
}

function logServer(n: number, engine: string, s: ServerPoint): void {
  const kbps = (dir: "upKbps" | "downKbps", k: "video" | "audio") => (s.receivers.reduce((a, r) => a + r.rtp[dir][k], 0) / n).toFixed(0);
  const lost = s.receivers.reduce((a, r) => a + r.rtp.packetsLost.video + r.rtp.packetsLost.audio, 0);
  log(`n=${n} (${engine}): server ${s.usage.cores.toFixed(3)} cores (node ${s.usage.rootCores.toFixed(3)}), ${s.usage.peakRssMB.toFixed(0)} MB (PSS ${s.usage.peakPssMB?.toFixed(0) ?? "-"}), ` +
    `${s.medianFps.toFixed(1)} fps (min ${s.minFps.toFixed(1)}), down ${kbps("downKbps", "video")}+${kbps("downKbps", "audio")} kbit/s, ` +
    `up ${kbps("upKbps", "video")}+${kbps("upKbps", "audio")} kbit/s, ${lost} packets lost; ` +
    `client ${s.clientCores.toFixed(2)} cores, machine ${(100 * s.usage.machineBusy).toFixed(0)}% busy (others ${s.otherCores.toFixed(2)})` +
    (s.serverLog.length ? `; server logged ${s.serverLog.length} warning(s), first: ${s.serverLog[0].slice(0, 200)}` : ""));
  log(`  by role (cores): ${fmtRoles(s.usage.byRole)}`);
  if (s.recording) log(formatRecordingCost(n, s.recording));
  if (args["cpu-prof"]) {
    const dir = path.join(outDir, `prof-${stamp}`, `n${n}-${engine}`);
    // One file per thread (tsx's loader runs in a worker): the main thread's is the largest.
    const file = fs.readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"))
      .sort((a, b) => fs.statSync(path.join(dir, b)).size - fs.statSync(path.join(dir, a)).size)[0];
    if (file) {
      s.profile = { file: path.join(dir, file), ...summariseProfile(path.join(dir, file), ROOT) };
      log(formatProfile(s.profile));
    } else log(`  (no .cpuprofile written in ${dir})`);
  }
}

/** Whole-machine busy cores minus the measured tree and this process. */
function otherCores(u: TreeUsage, self: NodeJS.CpuUsage): number {
  return Math.max(0, u.machineBusy * os.cpus().length - u.cores - (self.user + self.system) / 1e6 / u.wallS);
}

function ffmpegVersion(): string {
  try {
    return execFileSync(config.ffmpegPath, ["-version"], { encoding: "utf8" }).split("\n")[0];
  } catch (e) {
    throw new Error(`ffmpeg not runnable at ${config.ffmpegPath}: ${(e as Error).message}`);
  }
}

async function main(): Promise<void> {
  const version = ffmpegVersion();
  if (built) buildServer();
  await generateFixtures();
  const missing = inputsFor(Math.min(8, Math.max(...counts))).flatMap((f) => [f.video, f.audio]).filter((f) => !fs.existsSync(f));
  if (missing.length) throw new Error(`fixtures missing after generation (run \`npm run fixtures\`): ${missing.join(", ")}`);
  const cpus = os.cpus();
  log(`bench: ${cpus.length} x ${cpus[0]?.model ?? "?"}; ${args.size}@${enc.fps} ${codecLabel} ${enc.videoKbps}k; ` +
    `n = ${counts.join(",")}; VIDEO_ENGINE ${engines.join(" and ")}; baselines ${baselines.join(" and ")} (the CLI composes with ${compose}); ` +
    `${warmupS} s warm-up + ${durationS} s measured per point; ${version}; libraries FFmpeg ${libavVersion()}`);
  if (args["cpu-prof"]) log(`note: --cpu-prof is on; server CPU figures include the profiler's overhead`);

  const points: Point[] = [];
  for (const [i, n] of counts.entries()) {
    const pt: Point = { n, errors: [] };
    points.push(pt);
    for (const engine of engines) {
      phase = `[${i + 1}/${counts.length}] n=${n} server (VIDEO_ENGINE=${engine})`;
      log(`${phase}…`);
      try {
        await waitIdle("the server");
        const s = await measureServer(n, engine);
        if (engine === engines[0]) pt.server = s;
        (pt.engines ??= {})[engine] = s;
        logServer(n, engine, s);
      } catch (e) {
        pt.errors.push(`server (${engine}): ${(e as Error).message}`);
        log(`n=${n}: server (${engine}) FAILED: ${(e as Error).message}`);
      }
    }
    for (const kind of baselines) {
      phase = `[${i + 1}/${counts.length}] n=${n} baseline (${BASELINE_NAMES[kind]})`;
      log(`${phase}…`);
      try {
        await waitIdle("the baseline");
        const b = await measureBaseline(n, kind);
        if (kind === baselines[0]) pt.baseline = b;
        (pt.baselines ??= {})[kind] = b;
        log(`n=${n}: baseline ${kind} ${b.usage.cores.toFixed(3)} cores, ${b.usage.peakRssMB.toFixed(0)} MB (PSS ${b.usage.peakPssMB?.toFixed(0) ?? "-"}), ${b.outputFps.toFixed(1)} fps out (others ${b.otherCores.toFixed(2)})`);
      } catch (e) {
        pt.errors.push(`baseline ${kind}: ${(e as Error).message}`);
        log(`n=${n}: baseline ${kind} FAILED: ${(e as Error).message}`);
      }
    }

    // latency: a fresh server, one participant flipping its picture and tone, measured at a receiver.
    if (latencyS > 0) {
      phase = `[${i + 1}/${counts.length}] n=${n} latency`;
      log(`${phase}…`);
      const server = await startServerProcess({ size: args.size, maxParticipants: Math.max(2, n), built });
      try {
        pt.latency = await measureLatency({ url: server.url, room: "latency", participants: n, durationS: latencyS, warmupS, size: args.size });
        log(formatLatency(pt.latency));
      } catch (e) {
        pt.errors.push(`latency: ${(e as Error).message}`);
        log(`n=${n}: latency FAILED: ${(e as Error).message}`);
      } finally {
        await server.stop();
      }
    }
  }

  const geometry: Geometry = { width: enc.width, height: enc.height, camWidth: FIXTURE_WIDTH, camHeight: FIXTURE_HEIGHT, camFps: FIXTURE_FPS };
  const derived = derive(points, geometry);
  printTables(log, points, derived, geometry, cpus.length);
  printMediaPlane(log, points);
  const noisy = points.filter((p) => Math.max(p.server?.otherCores ?? 0, p.baseline?.otherCores ?? 0) > 0.1);
  if (noisy.length) log(`WARNING: other processes used > 0.1 cores during n=${noisy.map((p) => p.n).join(",")}: those figures are disturbed; rerun on an idle machine.`);

  fs.mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `cpu-${stamp}.json`);
  const svgFile = path.join(outDir, `cpu-${stamp}.svg`);
  const report = {
    startedAt: new Date().toISOString(),
    machine: { cpuModel: cpus[0]?.model, cpus: cpus.length, memoryMB: Math.round(os.totalmem() / 2 ** 20), os: `${os.type()} ${os.release()}`, node: process.version, clkTck: CLK_TCK },
    settings: { participants: counts, durationS, warmupS, size: args.size, codec, ...enc, ffmpegPath: config.ffmpegPath, ffmpegVersion: version, libraries: `FFmpeg ${libavVersion()} (node-av)`, engines, baselines, server: args.server, baselineCompose: compose, cpuProfile: args["cpu-prof"], fixtures: "pattern", talkers: args.talkers },
    geometry,
    points,
    derived,
  };
  fs.writeFileSync(file, JSON.stringify(report, null, 2) + "\n");
  const caption = `${args.size}@${enc.fps} ${codecLabel} ${enc.videoKbps}k, talkers ${args.talkers}, baseline ${compose}, ${durationS} s per point; ` +
    `${cpus.length} x ${cpus[0]?.model ?? "?"}; ${report.startedAt.slice(0, 16)}`;
  fs.writeFileSync(svgFile, renderSvg(derived, caption));
  log(`\nwrote ${path.relative(process.cwd(), file)} and ${path.relative(process.cwd(), svgFile)}`);
  log(`rerun: npm run bench -- --participants ${counts.join(",")} --duration ${durationS} --size ${args.size} --codec ${codec}` +
    (compose !== "xstack" ? ` --baseline-compose ${compose}` : "") + (args["cpu-prof"] ? " --cpu-prof" : "") + ` --talkers ${args.talkers} --layout ${args.layout} --labels ${args.labels} --engines ${engines.join(",")} --baselines ${baselines.join(",")} --server ${args.server}`);
  if (points.some((p) => p.errors.length)) process.exitCode = 1;
}

main().then(
  () => process.exit(),
  (e: unknown) => {
    console.error(`bench failed: ${(e as Error).message ?? e}`);
    process.exit(1);
  },
);
