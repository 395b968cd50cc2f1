// One anonymous client floods the server (idle joins, squatters, offers with 1,000 m-lines,
// long-poll abuse, a non-reader: test/support/flood.ts, its own process and loopback addresses)
// while a three-person call runs. The call must not notice: full frame rate, no long frame gap,
// /healthz answering quickly, and the server's ffmpeg children and memory held by the caps.
// Before the caps this took the call from 30 to ~10 fps with 860 ms gaps, and 243 ffmpeg children.
import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { liveFfmpegProcesses } from "../../mixer/FfmpegProcess.ts";
import type { RunningServer } from "../../server/main.ts";
import { closeAll, joinAll, longestGap, startTestServer, waitFor, waitForTiles } from "../support/call.ts";
import { quantile } from "../support/tones.ts";
import type { SyntheticParticipant } from "../support/SyntheticParticipant.ts";

const FLOOD = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "support", "flood.ts");
const FLOOD_S = 12;
let server: RunningServer;
let call: SyntheticParticipant[] = [];
beforeAll(async () => {
  server = await startTestServer({ joinOfferTimeoutMs: 3000 });
  call = await joinAll(server, "call", ["p0", "p1", "p2"]);
  for (const p of call) await waitForTiles(p, ["p0", "p1", "p2"]);
});
afterAll(async () => {
  await closeAll(call);
  await server?.close();
});

// The call's own children, counted the way the caps promise: one set per participant who offered
// (tile decoders), and one composite encoder (in process) per output the call's receivers use (plus
// one rung lingering after its last receiver moved away).
function callChildren(): { perParticipant: number; composite: number; compositeBound: number } {
  const running = liveFfmpegProcesses().filter((c) => !c.stopping);
  const outputs = Object.keys(server.rooms.get("call")?.currentMixer?.outputsInUse ?? {}).length;
  return {
    perParticipant: running.filter((c) => c.role !== "composite-encoder").length,
    composite: server.rooms.get("call")?.currentMixer?.rungEncoders.size ?? 0,
    compositeBound: outputs + 1,
  };
}

it("keeps a running call at full rate while one anonymous client floods the server", async () => {
  const children0 = callChildren().perParticipant;
  const rss0 = process.memoryUsage().rss;
  let childrenMax = children0;
  let compositeOver = 0;
  let floodMixers = 0; // rooms the flood opened that got a mixer (none should: nobody there offered media)
  let rssMax = rss0;
  const health: number[] = [];
  let flooding = true;
  const watch = (async () => {
    while (flooding) {
      const t = performance.now();
      const r = await fetch(`${server.url}/healthz`);
      health.push(performance.now() - t);
      expect(r.status).toBe(200);
      const c = callChildren();
      childrenMax = Math.max(childrenMax, c.perParticipant);
      compositeOver = Math.max(compositeOver, c.composite - c.compositeBound);
      floodMixers = Math.max(floodMixers, server.rooms.all().filter((r) => r.id !== "call" && r.currentMixer).length);
      rssMax = Math.max(rssMax, process.memoryUsage().rss);
      await new Promise((res) => setTimeout(res, 200));
    }
  })();
  const t0 = performance.now();
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", FLOOD, server.url, "call", String(FLOOD_S)], { timeout: (FLOOD_S + 60) * 1000 });
  const t1 = performance.now();
  flooding = false;
  await watch;
  const got = JSON.parse(stdout);
  const report = JSON.stringify({ got, health: { p90: quantile(health, 0.9), max: Math.max(...health), n: health.length }, childrenMax, children0, compositeOver, floodMixers, rssMb: (rssMax - rss0) / 1e6 });

  // The flood really happened, and was refused where it should be.
  expect(got.wsRefused, report).toBeGreaterThan(0); // connections per address
  expect(got.refused.too_many_joins, report).toBeGreaterThan(0); // rooms / seats per address
  expect(got.offersRefused, report).toBe(got.hugeOffers); // every 1,000-m-line offer refused before werift
  expect(got.longPoll["session 429"], report).toBeGreaterThan(0);
  expect(got.longPoll["out-of-order 409"], report).toBeGreaterThan(1000);
  expect(got.longPoll["deep 400"], report).toBe(1);
  expect(got.nonReaderClosed, report).toBe(true);

  // The call did not notice.
  for (const p of call) {
    const frames = p.frameTimes.filter((t) => t >= t0 && t <= t1).length;
    expect(frames / ((t1 - t0) / 1000), `${p.participantId} fps; ${report}`).toBeGreaterThanOrEqual(27);
    expect(longestGap(p, t0, t1), `${p.participantId} gap; ${report}`).toBeLessThan(400);
  }
  // /healthz kept answering, and quickly: nine probes in ten under 300 ms, none near a load
  // balancer's timeout. One probe can meet a stall of this process (it is also every client: werift
  // DTLS in JavaScript, a 720p decoder each), so the bound on all of them is looser: 300 ms as a
  // maximum failed CI twice in ten runs at 370 and 404 ms while the call kept 30 fps.
  expect(quantile(health, 0.9), report).toBeLessThan(300);
  expect(Math.max(...health), report).toBeLessThan(1500);
  // No ffmpeg child for anyone who never offered; memory bounded by the caps.
  expect(childrenMax, report).toBe(children0);
  expect(compositeOver, report).toBeLessThanOrEqual(0);
  expect(floodMixers, report).toBe(0);
  expect((rssMax - rss0) / 1e6, report).toBeLessThan(200);
  // The squatters' seats expire: the call's room is back to its three, and the idle rooms are gone.
  await waitFor("only the call left", () => server.rooms.all().length === 1 && server.rooms.get("call")?.size === 3, 10_000);
  for (const p of call) await waitForTiles(p, ["p0", "p1", "p2"]);
}, 120_000);
