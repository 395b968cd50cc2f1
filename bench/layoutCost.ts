// What name labels and the speaker view cost at n = 9, measured piece by piece. The whole-room
// benchmark (npm run bench -- --layout … --labels …) varies by ±0.05 cores from run to run, more
// than the 0.02 to be shown, so here each cost is taken where it arises:
//
// 1. The compositor itself (this process's CPU), on the real 30 fps clock with nine inputs that
//    deliver a new frame every tick: the grid without labels (the baseline), the grid with labels,
//    and the speaker view with labels, where the talker changes (highlight on and off) and the floor
//    moves as often as the room allows (SPEAKER_MIN_SWITCH_MS, 3 s). Scenarios alternate by round.
//    Label renders are real one-shot ffmpeg runs; their CPU is counted from the spawn host's reaped
//    children.
// 2. The decoders a floor change starts: each change resizes two tiles, and a resized tile gets a
//    new decoder (make-before-break). A real tile decoder is started on a camera fixture and run to
//    its first frame, and its CPU is counted the same way; the cost per second is that times the
//    resizes seen in (1), over the time.
// Usage: node --import tsx bench/layoutCost.ts [--seconds 10] [--rounds 3]
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { fixturePaths } from "../fixtures/participants.ts";
import { liveFfmpegProcesses } from "../mixer/FfmpegProcess.ts";
import { IvfReader } from "../mixer/ivf.ts";
import { spawnHostPid } from "../mixer/spawnHost.ts";
import { TileDecoder } from "../mixer/TileDecoder.ts";
import { VideoCompositor } from "../mixer/VideoCompositor.ts";
import type { VideoInput } from "../mixer/VideoInput.ts";
import { frameBytes } from "../mixer/yuv.ts";
import { loadConfig } from "../server/config.ts";

const { values: a } = parseArgs({ options: {
  seconds: { type: "string", default: "10" },
  rounds: { type: "string", default: "3" },
} });
const seconds = Number(a.seconds), rounds = Number(a.rounds);
const config = loadConfig();
const N = 9;
const FLOOR_EVERY_MS = config.speakerMinSwitchMs;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU seconds of the spawn host's finished children (ffmpeg one-shots and decoders, once reaped). */
function hostChildrenCpu(): number {
  const pid = spawnHostPid();
  if (!pid) return 0;
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[13]) + Number(f[14])) / 100; // cutime + cstime (fields 16, 17), clock ticks of 10 ms
}

const cpuS = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** An input that delivers a fresh mid-grey frame at its tile's size on every call of next(). */
class FakeInput {
  latest: { data: Buffer; width: number; height: number; at: number; seq: number } | undefined;
  cameraOff = false;
  resizes = 0;
  private frame = Buffer.alloc(0);
  private w = 0;
  private h = 0;
  private seq = 0;
  constructor(readonly participantId: string, readonly name: string) {}
  setTileSize(w: number, h: number): void {
    if (w === this.w && h === this.h) return;
    if (this.w) this.resizes++;
    this.w = w;
    this.h = h;
    this.frame = Buffer.alloc(frameBytes(w, h), 100);
  }
  next(): void {
    if (this.w) this.latest = { data: this.frame, width: this.w, height: this.h, at: performance.now(), seq: ++this.seq };
  }
}

type Scenario = "grid, no labels" | "grid, labels" | "speaker view, labels";

async function run(scenario: Scenario): Promise<{ cores: number; childCores: number; resizesPerS: number; fps: number }> {
  const labels = scenario !== "grid, no labels";
  let frames = 0;
  const comp = new VideoCompositor(
    { ffmpegPath: config.ffmpegPath, width: config.width, height: config.height, fps: 30, kbps: 1500, keyframeIntervalS: 10, keyframeMinIntervalMs: 0, stallTimeoutMs: 2000, labels },
    () => (frames++, true),
  );
  const inputs = Array.from({ length: N }, (_, i) => new FakeInput(`p${i}`, `Participant ${i + 1}`));
  for (const x of inputs) comp.add(x as unknown as VideoInput);
  const feed = setInterval(() => inputs.forEach((x) => x.next()), 1000 / 30);
  let floor = 0;
  const speaker = scenario === "speaker view, labels";
  if (speaker) {
    comp.setLayout("speaker", "p0");
    comp.setSpeaking("p0", true);
  }
  // Labels are rendered once per name and tile width, for the life of a participant: let them all
  // land before measuring (in the speaker view, everyone takes the large tile once, so the full and
  // the strip's shortened label of each are made), as in a meeting some minutes old.
  if (speaker) {
    for (let i = 1; i <= N; i++) {
      comp.setLayout("speaker", `p${i % N}`);
      await sleep(300);
    }
  }
  await sleep(3000);
  const resizes0 = inputs.reduce((s, x) => s + x.resizes, 0);
  const frames0 = frames;
  const [c0, k0, t0] = [cpuS(), hostChildrenCpu(), performance.now()];
  const moves = speaker
    ? setInterval(() => {
        comp.setSpeaking(`p${floor}`, false);
        floor = (floor + 1) % N;
        comp.setSpeaking(`p${floor}`, true);
        comp.setLayout("speaker", `p${floor}`);
      }, FLOOR_EVERY_MS)
    : undefined;
  await sleep(seconds * 1000);
  const s = (performance.now() - t0) / 1000;
  const [c1, k1] = [cpuS(), hostChildrenCpu()];
  clearInterval(moves);
  clearInterval(feed);
  comp.close();
  const resizes = inputs.reduce((sum, x) => sum + x.resizes, 0) - resizes0;
  return { cores: (c1 - c0) / s, childCores: (k1 - k0) / s, resizesPerS: resizes / s, fps: (frames - frames0) / s };
}

/** CPU seconds of one tile decoder started on a camera's keyframe and run to its first frame. */
async function decoderStartCpu(samples: number): Promise<number> {
  const frames = new IvfReader().push(readFileSync(fixturePaths("p0", "solid").video));
  const from = frames.findIndex((f) => f.isKeyframe);
  const k0 = hostChildrenCpu();
  for (let i = 0; i < samples; i++) {
    const d = new TileDecoder(config.ffmpegPath, "bench", 640, 360);
    const first = new Promise<void>((r) => d.once("frame", () => r()));
    // The keyframe and what follows it, a frame a tick, as a camera sends them, until a tile comes out.
    let k = from;
    const feed = setInterval(() => {
      const f = frames[k++ % frames.length]!;
      d.decode({ data: f.data, isKeyframe: f.isKeyframe } as Parameters<TileDecoder["decode"]>[0]);
    }, 1000 / 30);
    await first;
    clearInterval(feed);
    d.close();
    while (liveFfmpegProcesses().length) await sleep(10); // reaped by the host: its CPU is counted

  }
  await sleep(200);
  return (hostChildrenCpu() - k0) / samples;
}

const scenarios: Scenario[] = ["grid, no labels", "grid, labels", "speaker view, labels"];
const results = new Map<Scenario, Awaited<ReturnType<typeof run>>[]>(scenarios.map((s) => [s, []]));
for (let r = 0; r < rounds; r++) {
  for (const s of scenarios) results.get(s)!.push(await run(s));
  console.error(`round ${r + 1} of ${rounds} done`);
}
console.error("decoder starts…");
const perStart = await decoderStartCpu(10);

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
const pct = (x: number) => `${(100 * x).toFixed(2)} %`;
const base = mean(results.get("grid, no labels")!.map((x) => x.cores + x.childCores));
console.log(`\nn = ${N}, ${config.width}x${config.height} at 30 fps, ${seconds} s × ${rounds} rounds per scenario; floor moves every ${FLOOR_EVERY_MS} ms in the speaker view\n`);
console.log("| scenario | compositor (% of a core) | label renders | tile resizes/s | decoder starts (% of a core) | total vs baseline | fps |");
console.log("|---|---|---|---|---|---|---|");
for (const s of scenarios) {
  const xs = results.get(s)!;
  const comp = mean(xs.map((x) => x.cores));
  const kids = mean(xs.map((x) => x.childCores));
  const resizes = mean(xs.map((x) => x.resizesPerS));
  const decoders = resizes * perStart;
  const total = comp + kids + decoders;
  console.log(`| ${s}${s === "grid, no labels" ? " (baseline)" : ""} | ${pct(comp)} | ${pct(kids)} | ${resizes.toFixed(2)} | ${pct(decoders)} | ${s === "grid, no labels" ? "—" : `+${pct(total - base)}`} | ${mean(xs.map((x) => x.fps)).toFixed(1)} |`);
}
console.log(`\none tile decoder start (to its first 640x360 frame): ${(perStart * 1000).toFixed(1)} CPU-ms`);
console.log("rerun: npm run bench:layouts -- [--seconds 10] [--rounds 3]");
process.exit(0);
