// Hostile cameras beside a live call: participants sending 3840x2160 VP8 at 30 fps (~10 Mbit/s),
// deaf to keyframe requests, in a room of their own, from their own address
// (test/support/uhdSenders.ts, its own process). The decode budget keeps them from buying the
// server: the call keeps its rate, its rung and its frames, the server's CPU rises by at most 0.25
// cores, and the frames left undecoded are counted. Before the budget, two such senders took the
// server from 0.62 to 1.37 cores and the call to 22 fps with 455 ms gaps.
import { execFileSync, spawn } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { TreeSampler } from "../../bench/proctree.ts";
import type { RunningServer } from "../../server/main.ts";
import { metrics } from "../../telemetry/metrics.ts";
import { closeAll, joinAll, longestGap, startTestServer, waitFor, waitForTiles } from "../support/call.ts";
import type { SyntheticParticipant } from "../support/SyntheticParticipant.ts";

const SENDERS = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "support", "uhdSenders.ts");
let server: RunningServer;
let call: SyntheticParticipant[] = [];
let top = "";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  server = await startTestServer();
  call = await joinAll(server, "call", ["p0", "p1", "p2"]);
  for (const p of call) await waitForTiles(p, ["p0", "p1", "p2"]);
  top = `${server.config.outputRungs[0]!.width}x${server.config.outputRungs[0]!.height}`;
  await waitFor("the call on its top rung", () => call.every((p) => p.keyframeSize === top), 30_000);
});
afterAll(async () => {
  await closeAll(call);
  await server?.close();
});

/** CPU of this process (the server and the call's own clients) and its ffmpeg children over `ms`, not the senders'. */
let sendersCores = 0;
async function cores(ms: number): Promise<number> {
  const s = new TreeSampler(process.pid, (_pid, argv) => (argv.some((a) => a.includes("uhdSenders")) ? "senders" : "server"));
  s.start();
  await sleep(ms);
  const u = s.stop();
  sendersCores = u.byRole.senders ?? 0;
  return u.cores - sendersCores;
}

const ROUNDS = 3;
const WINDOW_S = 6;

/**
 * `floor`: "absolute" — the call keeps ≥ 27 fps and no gap of 400 ms in every 4K window; "paired" —
 * in the 4K windows it keeps what it had beside the same peers sending ordinary cameras (their fps
 * within 1 of the baseline windows', their longest gap within 200 ms of the baseline's).
 */
async function hostileBeside(count: number, room: string, floor: "absolute" | "paired"): Promise<void> {
  const reasons = ["oversize", "pixels", "bits", "address", "server", "reference"];
  const refusedNow = () => reasons.reduce((a, r) => a + metrics.decodeRefused.get({ reason: r }), 0);
  const refused0 = refusedNow();
  const overBandwidth0 = metrics.udpDropped.get({ reason: "over_bandwidth" });
  const skipReasons = ["overload", "encoder_busy", "encoder_restart"];
  const skipped0 = skipReasons.map((r) => metrics.compositeFramesSkipped.get({ reason: r }));
  const late0 = metrics.compositeLateTicks.get();
  const proc = spawn(process.execPath, ["--import", "tsx", SENDERS, server.url, room, String(count), "300", "127.0.0.2"], { stdio: ["pipe", "pipe", "inherit"] });
  let out = "";
  proc.stdout.on("data", (d: Buffer) => (out += d.toString()));
  await waitFor("the hostile senders sending", () => out.includes("sending"), 90_000);
  // Connected, now at the lowest priority: on these two cores the attackers' own packetizing and
  // encryption (werift, in JavaScript, ~0.15 cores per sender) would otherwise be what slows the
  // call, where on the internet they run on machines of their own. What they sent is reported.
  os.setPriority(proc.pid!, 19);
  try {
    execFileSync("chrt", ["--idle", "-a", "-p", "0", String(proc.pid)]); // SCHED_IDLE: only what the server leaves
  } catch {
    // no chrt (util-linux): nice 19 alone
  }
  // Windows with the same peers sending an ordinary camera (the baseline: their room, its composite
  // and their packets cost what any two or eight participants cost) and sending 4K, alternating and
  // beginning and ending on the baseline, so a drift of the call's own cost cancels.
  const windows: { hit: boolean; cores: number; attacker: number; t0: number; t1: number }[] = [];
  for (let i = 0; i < 2 * ROUNDS + 1; i++) {
    const hit = i % 2 === 1;
    proc.stdin.write(hit ? "uhd\n" : "normal\n");
    await sleep(1500);
    const t0 = performance.now();
    const c = await cores(WINDOW_S * 1000);
    windows.push({ hit, cores: c, attacker: sendersCores, t0, t1: performance.now() });
  }
  const tiles = server.rooms.get(room)?.list().filter((p) => p.tile).length ?? 0;
  proc.stdin.write("stop\n");
  await new Promise((r) => proc.once("exit", r));
  const got = JSON.parse(out.split("\n").find((l) => l.startsWith("{"))!);
  const refused = refusedNow() - refused0;
  const overBandwidth = metrics.udpDropped.get({ reason: "over_bandwidth" }) - overBandwidth0;
  const rises = windows.flatMap((w, i) => (w.hit ? [w.cores - (windows[i - 1]!.cores + windows[i + 1]!.cores) / 2] : [])).sort((a, b) => a - b);
  const rise = rises[Math.floor(rises.length / 2)]!;
  const skipped = Object.fromEntries(skipReasons.map((r, i) => [r, metrics.compositeFramesSkipped.get({ reason: r }) - skipped0[i]!]));
  const lateTicks = metrics.compositeLateTicks.get() - late0;
  const fps = call.map((p) => windows.map((w) => Math.round((p.frameTimes.filter((t) => t >= w.t0 && t <= w.t1).length / ((w.t1 - w.t0) / 1000)) * 10) / 10));
  const report = JSON.stringify({ count, got, skipped, lateTicks, fps, windows: windows.map((w) => `${w.hit ? "hit" : "base"} ${w.cores.toFixed(3)} (attackers ${w.attacker.toFixed(2)})`), rises, rise, refused, overBandwidth, tiles, rungs: call.map((p) => p.keyframeSize) });
  console.log(report);

  expect(got.joined, report).toBe(count);
  expect(tiles, report).toBe(count);
  const hits = windows.filter((w) => w.hit);
  const bases = windows.filter((w) => !w.hit);
  const rate = (p: SyntheticParticipant, ws: typeof windows) =>
    ws.reduce((a, w) => a + p.frameTimes.filter((t) => t >= w.t0 && t <= w.t1).length, 0) / ws.reduce((a, w) => a + (w.t1 - w.t0) / 1000, 0);
  const worstGap = (p: SyntheticParticipant, ws: typeof windows) => Math.max(...ws.map((w) => longestGap(p, w.t0, w.t1)));
  for (const p of call) {
    if (floor === "absolute") {
      expect(rate(p, hits), `${p.participantId} fps; ${report}`).toBeGreaterThanOrEqual(27);
      expect(worstGap(p, hits), `${p.participantId} gap; ${report}`).toBeLessThan(400);
    } else {
      expect(rate(p, hits), `${p.participantId} fps against the baseline; ${report}`).toBeGreaterThanOrEqual(rate(p, bases) - 1);
      expect(worstGap(p, hits), `${p.participantId} gap against the baseline; ${report}`).toBeLessThan(worstGap(p, bases) + 200);
    }
    expect(p.keyframeSize, report).toBe(top);
  }
  expect(rise, report).toBeLessThanOrEqual(0.25);
  // What was over the bandwidth budget never reached werift, and of the rest the oversize frames
  // were left undecoded (but one keyframe in DECODE_OVERSIZE_INTERVAL_MS), counted.
  expect(overBandwidth, report).toBeGreaterThan(0);
  expect(refused, report).toBeGreaterThan(0);
}

it("keeps a call whole beside two 4K senders", async () => {
  await hostileBeside(2, "uhd2", "absolute");
}, 150_000);

it("keeps a call as it was beside eight 4K senders from one address", async () => {
  // Eight participants in a second room already hold this two-core machine's call below 27 fps
  // (their decoders and their room's encoder beside the call's; the baseline windows measured
  // 14.7–26 fps over runs, the composite encoder behind: a capacity matter, issues 19 and 22). What
  // the attack must not do is take more: with 4K from the same eight the call keeps at least what it
  // had, and the server's CPU does not rise (measured −0.03 to −0.13 cores).
  await hostileBeside(8, "uhd8", "paired");
}, 180_000);
