// A busy machine: spinning processes at normal priority take most of both cores beside a real call.
// Receivers on clean links keep the top rung (the server's own lateness is not blamed on them), each
// hears 50 packets a second, and the composite keeps coming at ≥ 20 fps with no gap of 500 ms;
// a receiver whose own link loses 20 % still falls within 5 s, alone, and climbs back once it is
// clean. And the overload policy's steps, forced with a tiny CPU budget: new joins refused with
// server_busy, then the composite at 20 fps, then 15, each shown in /metrics.
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { fixturePaths } from "../../fixtures/participants.ts";
import type { RunningServer } from "../../server/main.ts";
import { metrics } from "../../telemetry/metrics.ts";
import { closeAll, longestGap, sleep, startTestServer, waitFor } from "../support/call.ts";
import { startLoad, type LoadHarness } from "../support/loadHarness.ts";
import { SyntheticParticipant } from "../support/SyntheticParticipant.ts";

let server: RunningServer | undefined;
let load: LoadHarness | undefined;
afterEach(async () => {
  await load?.stop();
  load = undefined;
  await server?.close();
  server = undefined;
});
afterAll(async () => {
  await load?.stop();
});

const rungOf = (by: SyntheticParticipant, who: SyntheticParticipant) =>
  (by.participants as unknown as { id: string; rung: string | null }[]).find((p) => p.id === who.participantId)?.rung;

/** Audio packets a second `p` received between `from` and `to`. */
const audioRate = (p: SyntheticParticipant, from: number, to: number) => (p.audioPacketTimes.filter((t) => t >= from && t < to).length * 1000) / (to - from);
const frameRate = (p: SyntheticParticipant, from: number, to: number) => (p.frameTimes.filter((t) => t >= from && t < to).length * 1000) / (to - from);

async function threeOnTop(s: RunningServer, room: string): Promise<SyntheticParticipant[]> {
  const ps: SyntheticParticipant[] = [];
  for (const id of ["p0", "p1", "p2"]) {
    // Not decoded here: what is measured is what arrives (rung, frames, packets), and decoders in
    // this process would only add to the load the test means to control.
    const p = new SyntheticParticipant({ url: s.url, room, name: id, ...fixturePaths(id, "pattern") });
    await p.join();
    ps.push(p);
  }
  await waitFor("every composite arriving", () => ps.every((p) => p.frameTimes.length > 30), 15_000);
  for (const p of ps) expect(rungOf(ps[0]!, p)).toBe("1280x720");
  return ps;
}

describe("on a busy machine", () => {
  it("keeps clean receivers on the top rung at full sound and ≥ 20 fps; only the lossy link falls, and climbs back", async () => {
    server = await startTestServer();
    const ps = await threeOnTop(server, "busy");
    const [p0, p1, lossy] = ps as [SyntheticParticipant, SyntheticParticipant, SyntheticParticipant];
    try {
      const skipped0 = metrics.audioTicksSkipped.get();
      load = startLoad();
      await sleep(3000); // the machine is saturated now
      const t0 = performance.now();
      lossy.setDownlinkLoss(0.2);
      await waitFor("the lossy receiver on a lower rung", () => rungOf(p0, lossy) !== "1280x720", 5000);
      if (process.env.DEBUG_TEST) console.log({ downAfterMs: performance.now() - t0 });
      // 12 s of the saturated machine: the clean ones stay, hear every packet, see frames coming.
      const w0 = performance.now();
      for (let i = 0; i < 24; i++) {
        await sleep(500);
        for (const p of [p0, p1]) expect(rungOf(p0, p), `${p.participantId} keeps the top rung`).toBe("1280x720");
      }
      const w1 = performance.now();
      for (const p of [p0, p1]) {
        expect(audioRate(p, w0, w1), "audio packets a second").toBeGreaterThanOrEqual(49.5);
        expect(frameRate(p, w0, w1), "composite frames a second").toBeGreaterThanOrEqual(20);
        expect(longestGap(p, w0, w1), "longest composite gap (ms)").toBeLessThan(500);
      }
      if (process.env.DEBUG_TEST) {
        console.log({
          audio: [p0, p1].map((p) => audioRate(p, w0, w1)), fps: [p0, p1].map((p) => frameRate(p, w0, w1)), gap: [p0, p1].map((p) => longestGap(p, w0, w1)),
          level: server.rooms.load.level, sample: server.rooms.load.last, skipped: ["overload", "still", "encoder_busy"].map((reason) => metrics.compositeFramesSkipped.get({ reason })), late: metrics.compositeLateTicks.get(),
        });
      }
      expect(metrics.audioTicksSkipped.get(), "audio ticks skipped").toBe(skipped0);
      lossy.setDownlinkLoss(0);
      // Two rungs up, 10 s each, with reports of a starved receiver (this process) in between.
      await waitFor("the lossy receiver back at the top", () => rungOf(p0, lossy) === "1280x720", 45_000);
      for (const p of [p0, p1]) expect(rungOf(p0, p)).toBe("1280x720");
    } finally {
      await closeAll(ps);
    }
  }, 90_000);
});

describe("the overload policy", () => {
  it("over budget: refuses new joins (server_busy), then lowers the composite to 20 fps, then 15, shown in /metrics", async () => {
    server = await startTestServer({ overloadCpu: 0.001 }); // any CPU at all is over this budget
    const viewer = new SyntheticParticipant({ url: server.url, room: "hot", name: "v", ...fixturePaths("p0", "pattern"), decode: true });
    const ps = [viewer];
    try {
      await viewer.join();
      const steps0 = metrics.overloadSteps.get({ direction: "up", to: "3" });
      await waitFor("level 1", () => server!.rooms.load.level >= 1, 8000);
      const late = new SyntheticParticipant({ url: server.url, room: "hot", name: "late", ...fixturePaths("p1", "pattern") });
      ps.push(late);
      await expect(late.join()).rejects.toThrow(/server_busy/);
      expect(metrics.busyRefusals.get()).toBeGreaterThan(0);
      await waitFor("level 3", () => server!.rooms.load.level === 3, 12_000);
      expect(metrics.overloadSteps.get({ direction: "up", to: "3" })).toBe(steps0 + 1);
      await sleep(1000);
      const t = performance.now();
      await sleep(4000);
      const fps = frameRate(viewer, t, performance.now());
      expect(fps).toBeGreaterThan(12);
      expect(fps).toBeLessThan(17);
      expect(longestGap(viewer, t), "frames left out evenly: no gap").toBeLessThan(250);
      expect(metrics.compositeFramesSkipped.get({ reason: "overload" })).toBeGreaterThan(0);
      const text = await (await fetch(`${server.url}/metrics`)).text();
      expect(text).toMatch(/^mcu_overload_level 3$/m);
      expect(text).toMatch(/^mcu_overload_steps_total\{direction="up",to="2"\} [1-9]/m);
    } finally {
      await closeAll(ps);
    }
  }, 60_000);
});
