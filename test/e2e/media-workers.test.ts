// Rooms on media workers (MEDIA_WORKERS=2): two rooms land on two worker processes, each room's
// media CPU on its own process; one worker saturated on purpose (a busy loop, test hook) leaves the
// other room's frames coming on time; a worker killed with SIGKILL ends only its rooms, whose
// clients are told to reconnect and are back in a call within 10 s, while the other room goes on;
// recording in a worker under the server-wide MAX_RECORDINGS; both rooms on a busy machine; and a
// worker signalled as a whole process group is, which leaves the shutdown to the server.
import fs from "node:fs";
import fsp from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../server/main.ts";
import { startLoad } from "../support/loadHarness.ts";
import { closeAll, joinAll, longestGap, sleep, startTestServer, waitFor, waitForTiles } from "../support/call.ts";
import type { SyntheticParticipant } from "../support/SyntheticParticipant.ts";
import { api, download, startRecording, stopRecording, tempDir, waitUntilDone } from "../support/recordingApi.ts";
import { colorsOf, decodeErrors, frameAt, gridColors } from "../support/recordingMedia.ts";

/** CPU ms (user + system) of `pid` so far, from /proc. */
function cpuMs(pid: number): number {
  const s = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

const fps = (p: SyntheticParticipant, from: number, to: number) => (p.frameTimes.filter((t) => t >= from && t < to).length * 1000) / (to - from);

let server: RunningServer;
let roomA: SyntheticParticipant[] = [];
let roomB: SyntheticParticipant[] = [];
let dir: string;

beforeAll(async () => {
  process.env.MEDIA_WORKER_TEST_HOOKS = "1";
  dir = await tempDir("workers");
  server = await startTestServer({ mediaWorkers: 2, recordingsDir: dir, maxRecordings: 1, recordingsMinFreeMb: 0 });
  roomA = await joinAll(server, "wa", ["p0", "p1"]);
  roomB = await joinAll(server, "wb", ["p2", "p3"]);
  await Promise.all([...roomA.map((p) => waitForTiles(p, ["p0", "p1"], 15_000)), ...roomB.map((p) => waitForTiles(p, ["p2", "p3"], 15_000))]);
}, 60_000);

afterAll(async () => {
  await closeAll([...roomA, ...roomB]);
  await server?.close();
  delete process.env.MEDIA_WORKER_TEST_HOOKS;
  await fsp.rm(dir, { recursive: true, force: true });
});

describe("media workers", () => {
  it("places two rooms on two worker processes, each room's CPU on its own", async () => {
    const a = server.workers!.workerOf("wa")!;
    const b = server.workers!.workerOf("wb")!;
    expect(a.index).not.toBe(b.index);
    expect(a.pid).not.toBe(process.pid);
    expect(b.pid).not.toBe(process.pid);
    const [a0, b0, t0] = [cpuMs(a.pid!), cpuMs(b.pid!), performance.now()];
    await sleep(3000);
    const wall = performance.now() - t0;
    const coresA = (cpuMs(a.pid!) - a0) / wall;
    const coresB = (cpuMs(b.pid!) - b0) / wall;
    if (process.env.DEBUG_TEST) console.log({ coresA, coresB });
    // Each worker composites, mixes and encodes its own room: both busy, neither idle.
    expect(coresA).toBeGreaterThan(0.05);
    expect(coresB).toBeGreaterThan(0.05);
    // /metrics (summed over the workers) and /api/workers show both.
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(/mcu_media_worker_up\{worker="0"\} 1/);
    expect(text).toMatch(/mcu_media_worker_up\{worker="1"\} 1/);
    expect(text).toMatch(/mcu_rooms 2/);
    const list = (await (await fetch(`${server.url}/api/workers`)).json()) as { index: number; load: { rooms: string[] } }[];
    expect(list.find((w) => w.index === a.index)!.load.rooms).toEqual(["wa"]);
    expect(list.find((w) => w.index === b.index)!.load.rooms).toEqual(["wb"]);
    const rooms = (await (await fetch(`${server.url}/api/rooms`)).json()) as { id: string; participants: unknown[] }[];
    expect(rooms.map((r) => r.id).sort()).toEqual(["wa", "wb"]);
    expect(rooms.every((r) => r.participants.length === 2)).toBe(true);
  });

  it("a saturated worker does not change the other room's frame gaps", async () => {
    const a = server.workers!.workerOf("wa")!;
    const before = performance.now();
    await sleep(3000);
    const t0 = performance.now();
    const baseGap = Math.max(...roomB.map((p) => longestGap(p, before, t0)));
    await server.workers!.spin(a.index, 5000);
    await sleep(5000);
    const t1 = performance.now();
    const gapsB = roomB.map((p) => longestGap(p, t0 + 200, t1));
    const gapsA = roomA.map((p) => longestGap(p, t0 + 200, t1));
    if (process.env.DEBUG_TEST) console.log({ baseGap, gapsA, gapsB, fpsB: roomB.map((p) => fps(p, t0, t1)) });
    // Room A's worker really was stalled (its composite stopped for a while)…
    expect(Math.max(...gapsA)).toBeGreaterThan(150);
    // …while room B's kept its pace: no gap much over what it had before, and near full rate.
    for (const g of gapsB) expect(g).toBeLessThan(Math.max(250, baseGap * 2));
    for (const p of roomB) expect(fps(p, t0 + 200, t1)).toBeGreaterThan(24);
  });

  it("records a room in its worker; MAX_RECORDINGS holds across workers; main post-processes", async () => {
    const rec = await startRecording(server.url, "wb");
    for (const p of roomB) await waitFor("recording notice", () => p.roomState?.recording?.id === rec.id, 5000);
    // The other room is on the other worker, but the limit (1) is the server's.
    const refused = await api(server.url, "POST", "/api/rooms/wa/recording");
    expect(refused.status).toBe(429);
    expect(refused.json.message).toMatch(/MAX_RECORDINGS=1/);
    expect((await api(server.url, "GET", "/api/rooms/wb/recording")).json.recording.id).toBe(rec.id);
    expect((await api(server.url, "GET", "/api/rooms/nowhere/recording")).json).toEqual({ recording: null });
    expect((await api(server.url, "POST", "/api/rooms/nowhere/recording")).status).toBe(404);
    await sleep(3000);
    expect((await stopRecording(server.url, "wb")).status).toBe("pending");
    const meta = await waitUntilDone(server.url, rec.id);
    const webm = await download(server.url, rec.id, "recording.webm", dir);
    expect(await decodeErrors(webm)).toBe("");
    expect(gridColors(await frameAt(webm, (meta.duration ?? 2) / 2), 2)).toEqual(colorsOf(["p2", "p3"]));
  }, 60_000);

  it("a killed worker's rooms are back within 10 s; the other room goes on; its recording is finalized", async () => {
    const a = server.workers!.workerOf("wa")!;
    const rec = await startRecording(server.url, "wa");
    await sleep(2000);
    const t0 = performance.now();
    process.kill(a.pid!, "SIGKILL");
    // Its clients are told to reconnect (a page does so by itself after reconnectAfterMs)…
    for (const p of roomA) await waitFor("shutdown to room A's clients", () => p.messages.some((m) => m.type === "shutdown"), 5000);
    await closeAll(roomA);
    // …and are seated again, on a worker that runs (the restarted one or the other).
    await waitFor("the killed worker started again", () => server.workers!.list().every((w) => w.ready), 10_000);
    roomA = await joinAll(server, "wa", ["p0", "p1"]);
    await Promise.all(roomA.map((p) => waitForTiles(p, ["p0", "p1"], 10_000)));
    const back = performance.now() - t0;
    if (process.env.DEBUG_TEST) {
      const ts = roomB[0]!.frameTimes.filter((t) => t >= t0);
      const gaps = ts.slice(1).map((t, i) => [Math.round(ts[i]! - t0), Math.round(t - ts[i]!)]).filter(([, g]) => g! > 150);
      console.log({ backMs: back, gaps });
    }
    expect(back).toBeLessThan(10_000);
    // Room B never noticed.
    for (const p of roomB) expect(longestGap(p, t0, performance.now())).toBeLessThan(500);
    // The recording it was making is closed out from what reached the disk, and post-processed.
    const meta = await waitUntilDone(server.url, rec.id);
    expect(meta.endedBy).toBe("crash");
    expect(meta.duration).toBeGreaterThan(0.5);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(new RegExp(`mcu_media_worker_exits_total\\{worker="${a.index}"\\} 1`));
  });

  it("on a busy machine (spinners on every core) both rooms keep their sound and a moving picture, nothing skipped", async () => {
    const metric = async (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(await (await fetch(`${server.url}/metrics`)).text())?.[1] ?? 0);
    const skipped0 = await metric("mcu_audio_ticks_skipped_total");
    const load = startLoad();
    try {
      await sleep(2000);
      const t0 = performance.now();
      await sleep(8000);
      const t1 = performance.now();
      const everyone = [...roomA, ...roomB];
      const audio = everyone.map((p) => (p.audioPacketTimes.filter((t) => t >= t0 && t < t1).length * 1000) / (t1 - t0));
      const video = everyone.map((p) => fps(p, t0, t1));
      if (process.env.DEBUG_TEST) console.log({ audio, video, gaps: everyone.map((p) => longestGap(p, t0, t1)) });
      // Sound is never skipped: 50 packets a second to every listener of both rooms.
      for (const pps of audio) expect(pps).toBeGreaterThan(47);
      // The picture may be lowered on purpose (the overload policy: 20, then 15 fps), never stopped.
      for (const f of video) expect(f).toBeGreaterThan(12);
      for (const p of everyone) expect(longestGap(p, t0, t1)).toBeLessThan(1000);
      expect(await metric("mcu_audio_ticks_skipped_total")).toBe(skipped0);
    } finally {
      await load.stop();
    }
  }, 30_000);
  it("a worker signalled with SIGTERM or SIGINT (as Ctrl-C or systemd signal the whole group) keeps its room until the server closes it", async () => {
    const b = server.workers!.workerOf("wb")!;
    const t0 = performance.now();
    process.kill(b.pid!, "SIGTERM");
    process.kill(b.pid!, "SIGINT");
    await sleep(2500);
    // Still the same process, still serving: the server's own shutdown is what tells clients to go.
    expect(() => process.kill(b.pid!, 0)).not.toThrow();
    expect(server.workers!.workerOf("wb")?.pid).toBe(b.pid);
    expect(server.workers!.list().every((w) => w.ready)).toBe(true);
    for (const p of roomB) {
      expect(longestGap(p, t0, performance.now())).toBeLessThan(500);
      expect(p.messages.some((m) => m.type === "shutdown")).toBe(false);
    }
  });
});
