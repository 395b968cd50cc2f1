// Recording acceptance with real Redis (BullMQ), real werift peers and real ffmpeg: what a
// person watching the recording would see and hear, and what an operator gets from the API.
import fs from "node:fs/promises";
import { QueueEvents } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { liveFfmpegProcesses } from "../../mixer/FfmpegProcess.ts";
import { metrics } from "../../telemetry/metrics.ts";
import { generateFixtures } from "../../fixtures/generate.ts";
import { FLIP_TONE_HZ, flipAudioOn, flipFixturePaths, flipVideoOn } from "../../fixtures/participants.ts";
import { startServer, type RunningServer } from "../../server/main.ts";
import { probeDuration } from "../../server/recordings/finalize.ts";
import { focusLayout } from "../../mixer/layout.ts";
import { QUEUE_NAME } from "../../server/recordings/PostProcessQueue.ts";
import { closeAll, joinAll, sleep, waitFor, waitForTiles } from "../support/call.ts";
import { FFMPEG, runFfmpeg } from "../support/ffmpegRun.ts";
import { api, download, rawGet, REDIS_URL, startRecording, stopRecording, tempDir, uniquePrefix, waitUntilDone } from "../support/recordingApi.ts";
import { SyntheticParticipant } from "../support/SyntheticParticipant.ts";
import { quantile, toneEnvelope, toneOnsets } from "../support/tones.ts";
import { colorsOf, decodeAudio, decodeErrors, frameAt, gridColors, largestGap, packetTimes, tileColors, toneLevels, videoOnsets } from "../support/recordingMedia.ts";

let server: RunningServer;
let dir: string;
let out: string;
const prefix = uniquePrefix("rec");
let events: QueueEvents;
const progress = new Map<string, number[]>();
const completed = new Set<string>();

beforeAll(async () => {
  await generateFixtures();
  dir = await tempDir("recordings");
  out = await tempDir("downloads");
  server = await startServer({
    port: 0, host: "127.0.0.1", logLevel: "warn", recordingsDir: dir, redisUrl: REDIS_URL, queuePrefix: prefix, postprocessWorker: true, mediaWorkers: 0,
  });
  events = new QueueEvents(QUEUE_NAME, { connection: { url: REDIS_URL }, prefix });
  events.on("progress", ({ jobId, data }) => progress.set(jobId, [...(progress.get(jobId) ?? []), Number(data)]));
  events.on("completed", ({ jobId }) => completed.add(jobId));
  await events.waitUntilReady();
});

afterAll(async () => {
  await server?.close();
  await events?.close();
  if (process.env.KEEP_TEST_FILES) return console.log("kept", dir, out);
  await fs.rm(dir, { recursive: true, force: true });
  await fs.rm(out, { recursive: true, force: true });
});

describe("recording a three-person call (BullMQ on Redis)", () => {
  let id: string;
  let recordedS: number;

  it("makes a WebM that decodes end to end, lasts as long as the recording, shows the grid and holds every tone", async () => {
    const ids = ["p0", "p1", "p2"];
    const ps = await joinAll(server, "rec3", ids);
    try {
      await waitForTiles(ps[0]!, ids);
      // Everyone is told the room is being recorded.
      const started = await startRecording(server.url, "rec3");
      const t0 = performance.now();
      id = started.id;
      expect(started.status).toBe("recording");
      for (const p of ps) await waitFor("recording notice", () => p.roomState?.recording?.id === id, 5000);
      await sleep(6000);
      const stopped = await stopRecording(server.url, "rec3");
      recordedS = (performance.now() - t0) / 1000;
      expect(stopped.status).toBe("pending");
      for (const p of ps) await waitFor("recording-ended notice", () => p.roomState && p.roomState.recording === null, 5000);
    } finally {
      await closeAll(ps);
    }
    const meta = await waitUntilDone(server.url, id);
    expect(meta.participants.filter((e) => e.event === "present").map((e) => e.name).sort()).toEqual(ids);

    const webm = await download(server.url, id, "recording.webm", out);
    expect(await decodeErrors(webm)).toBe("");
    const duration = await probeDuration(FFMPEG, webm);
    expect(Math.abs(duration - recordedS), `webm ${duration}s, recorded ${recordedS}s`).toBeLessThanOrEqual(0.5);
    expect(meta.duration).toBeCloseTo(duration, 1);
    expect(gridColors(await frameAt(webm, duration / 2), 3)).toEqual(colorsOf(ids));
    const levels = toneLevels(await decodeAudio(webm, 1, 4), ids);
    for (const p of ids) expect(levels[p], `tones in the recording: ${JSON.stringify(levels)}`).toBeGreaterThan(-30);
    // Seekable: the finalized WebM has a Cues element (its index, EBML id 1C 53 BB 6B) so players can jump.
    expect((await fs.readFile(webm)).includes(Buffer.from([0x1c, 0x53, 0xbb, 0x6b]))).toBe(true);
  });

  it("also makes an MP4 (H.264 + AAC) and a poster, and the job reported progress and completed", async () => {
    const mp4 = await download(server.url, id, "recording.mp4", out);
    expect(await decodeErrors(mp4)).toBe("");
    const info = (await runFfmpeg(["-i", mp4])).stderr;
    expect(info).toMatch(/Video: h264/);
    expect(info).toMatch(/Audio: aac/);
    expect(Math.abs((await probeDuration(FFMPEG, mp4)) - recordedS)).toBeLessThanOrEqual(0.6);
    const poster = await download(server.url, id, "poster.jpg", out);
    expect(gridColors(await frameAt(poster, 0), 3)).toEqual(colorsOf(["p0", "p1", "p2"]));

    await waitFor("BullMQ completed event", () => completed.has(id), 5000);
    const reported = progress.get(id) ?? [];
    expect(reported.some((p) => p > 0 && p < 100), `progress events ${JSON.stringify(reported)}`).toBe(true);
    expect(reported.at(-1)).toBe(100);
    const meta = (await api(server.url, "GET", `/api/recordings/${id}`)).json;
    expect(meta).toMatchObject({ status: "done", progress: 1, attempts: 1 });
    expect(meta.files.map((f: { name: string }) => f.name).sort()).toEqual(["poster.jpg", "recording.mp4", "recording.webm"]);
    const listed = (await api(server.url, "GET", "/api/recordings")).json;
    expect(listed.find((m: { id: string }) => m.id === id)).toMatchObject({ status: "done", room: "rec3" });
  });

  it("serves byte ranges of the media", async () => {
    const whole = await fs.readFile(`${out}/${id}-recording.webm`);
    const r = await fetch(`${server.url}/api/recordings/${id}/files/recording.webm`, { headers: { Range: "bytes=100-1099" } });
    expect(r.status).toBe(206);
    expect(r.headers.get("content-range")).toBe(`bytes 100-1099/${whole.length}`);
    expect(Buffer.from(await r.arrayBuffer()).equals(whole.subarray(100, 1100))).toBe(true);
    const tail = await fetch(`${server.url}/api/recordings/${id}/files/recording.webm`, { headers: { Range: "bytes=-10" } });
    expect(Buffer.from(await tail.arrayBuffer()).equals(whole.subarray(whole.length - 10))).toBe(true);
    const head = await fetch(`${server.url}/api/recordings/${id}/files/recording.webm`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String(whole.length));
    expect(head.headers.get("accept-ranges")).toBe("bytes");
    expect((await fetch(`${server.url}/api/recordings/${id}`, { method: "HEAD" })).status).toBe(200);
  });
});

describe("a recording follows the room's layout", () => {
  it("shows a pinned participant large, then the grid again, as the room showed them", async () => {
    const ids = ["p0", "p1", "p2"];
    const ps = await joinAll(server, "reclayout", ids);
    const layout = (body: unknown) =>
      fetch(`${server.url}/api/rooms/reclayout/layout`, { method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    let id: string;
    try {
      await waitForTiles(ps[0]!, ids);
      expect((await layout({ layout: "pinned", participant: ps[2]!.participantId })).status).toBe(200);
      await waitFor("p2 pinned", () => server.rooms.get("reclayout")?.currentMixer?.layout().find((t) => t.participantId === ps[2]!.participantId)?.rect.w === 1280, 3000);
      id = (await startRecording(server.url, "reclayout")).id;
      await sleep(3000);
      expect((await layout({ layout: "grid" })).status).toBe(200);
      await sleep(3000);
      await stopRecording(server.url, "reclayout");
    } finally {
      await closeAll(ps);
    }
    await waitUntilDone(server.url, id);
    const webm = await download(server.url, id, "recording.webm", out);
    const duration = await probeDuration(FFMPEG, webm);
    // Pinned: p2's blue fills the large tile, the others in the strip.
    const pinned = focusLayout(3, 2, 1280, 720);
    expect(tileColors(await frameAt(webm, 1.5), pinned)).toEqual(colorsOf(ids));
    expect(pinned[2]!.w).toBe(1280);
    // Then the grid, as in the room.
    expect(gridColors(await frameAt(webm, duration - 1), 3)).toEqual(colorsOf(ids));
  });
});

describe("a recording while people come and go", () => {
  it("stays one continuous file with no freeze (no gap of a second), and the grid follows the room", async () => {
    const ps = await joinAll(server, "churn", ["p0", "p1", "p2"]);
    let late: Awaited<ReturnType<typeof joinAll>> = [];
    let id: string;
    try {
      await waitForTiles(ps[0]!, ["p0", "p1", "p2"]);
      id = (await startRecording(server.url, "churn")).id;
      await sleep(2500);
      late = await joinAll(server, "churn", ["p3"]);
      await sleep(2000);
      await ps[0]!.close();
      await waitForTiles(ps[1]!, ["p1", "p2", "p3"]);
      await sleep(2000);
      await stopRecording(server.url, "churn");
    } finally {
      await closeAll([...ps, ...late]);
    }
    const meta = await waitUntilDone(server.url, id);
    expect(meta.participants.map((e) => `${e.event} ${e.name}`)).toEqual(["present p0", "present p1", "present p2", "joined p3", "left p0"]);
    const webm = await download(server.url, id, "recording.webm", out);
    expect(await decodeErrors(webm)).toBe("");
    const t = await packetTimes(webm);
    // A stutter at most, never a freeze. Joins and leaves stall this test process (it also holds every client: werift peers doing their DTLS
    // handshakes in JavaScript, one 720p decoder of the composite each) on 2 cores: on the 2026-11-29
    // runner the code of the day before measured 367 ms here, where earlier runners kept it under 200;
    // one CI run in ten saw 866 ms. A freeze, which a viewer reports, is a second or more.
    expect(largestGap(t.video), "largest gap between video frames (ms)").toBeLessThan(1000);
    // Sound runs the whole length of the picture: nothing dropped or stalled on the way in (the
    // recorder's last cluster of either stream can be cut by up to a few ticks: 194 ms seen once).
    expect(Math.abs(Math.max(...t.audio) - Math.max(...t.video)), "audio end vs video end (ms)").toBeLessThanOrEqual(250);
    const duration = await probeDuration(FFMPEG, webm);
    expect(gridColors(await frameAt(webm, 1), 3)).toEqual(colorsOf(["p0", "p1", "p2"]));
    expect(gridColors(await frameAt(webm, duration - 0.5), 3)).toEqual(colorsOf(["p1", "p2", "p3"]));
  });
});

describe("a recording while ffmpeg children die", () => {
  it("survives its composite encoder failing and kill -9 of its own recorder: one continuous, clean file", async () => {
    const ids = ["p0", "p1", "p2"];
    const ps = await joinAll(server, "phoenix", ids);
    let id: string;
    let recordedS: number;
    try {
      await waitForTiles(ps[0]!, ids);
      id = (await startRecording(server.url, "phoenix")).id;
      const t0 = performance.now();
      await sleep(2000);
      const spawns = metrics.encoderSpawns.get();
      const [encoder] = [...server.rooms.get("phoenix")!.currentMixer!.rungEncoders.values()];
      encoder!.injectFailure();
      await waitFor("another encoder", () => metrics.encoderSpawns.get() > spawns, 5000);
      await sleep(2000);
      const [recorder] = liveFfmpegProcesses().filter((p) => p.role === "recorder");
      process.kill(recorder!.pid!, "SIGKILL");
      await waitFor("a second part", () => server.recordings.current("phoenix")?.parts.length === 2, 5000);
      await sleep(2000);
      await stopRecording(server.url, "phoenix");
      recordedS = (performance.now() - t0) / 1000;
    } finally {
      await closeAll(ps);
    }
    const meta = await waitUntilDone(server.url, id);
    expect(meta.parts).toEqual(["live-001.mkv", "live-002.mkv"]);
    const webm = await download(server.url, id, "recording.webm", out);
    expect(await decodeErrors(webm)).toBe("");
    const t = await packetTimes(webm);
    // The failed encoder is replaced at once (its first frame a keyframe); the recorder's kill and respawn stall this
    // test process (every client lives in it): 567 ms seen once in CI. A freeze is a second or more.
    expect(largestGap(t.video), "largest gap between video frames (ms)").toBeLessThan(1000);
    expect(Math.abs(Math.max(...t.audio) - Math.max(...t.video)), "audio end vs video end (ms)").toBeLessThanOrEqual(250);
    const duration = await probeDuration(FFMPEG, webm);
    // Missing: the killed recorder's last cluster (≤ 0.5 s) and its restart (spawn, a fresh keyframe).
    expect(duration).toBeGreaterThan(recordedS - 1.5);
    expect(duration).toBeLessThanOrEqual(recordedS + 0.3);
    expect(gridColors(await frameAt(webm, duration - 0.5), 3)).toEqual(colorsOf(ids));
  });
});

describe("lip sync in a recording", () => {
  it("keeps a speaker's picture and voice together (within 100 ms, the sender's own offset taken out)", async () => {
    // The flip participant turns its picture white and its 2400 Hz tone on together, once a second.
    // Its own picture/sound offset is measured as it sends (a keyframe request makes its video jump).
    const sent = { video: [] as number[], audio: [] as number[] };
    const flip = new SyntheticParticipant({
      url: server.url, room: "sync", name: "flip", ...flipFixturePaths(), decode: true,
      onVideoSent: (i, at) => flipVideoOn(i) && !flipVideoOn(i - 1) && sent.video.push(at),
      onAudioSent: (i, at) => flipAudioOn(i) && !flipAudioOn(i - 1) && sent.audio.push(at),
    });
    await flip.join();
    const others = await joinAll(server, "sync", ["p1"]);
    let id: string;
    let t0: number;
    let t1: number;
    try {
      await waitFor("two tiles", () => server.rooms.get("sync")?.currentMixer?.layout().length === 2);
      await sleep(1500);
      t0 = performance.now();
      id = (await startRecording(server.url, "sync")).id;
      await sleep(6000);
      await stopRecording(server.url, "sync");
      t1 = performance.now();
    } finally {
      await closeAll([flip, ...others]);
    }
    await waitUntilDone(server.url, id);
    const webm = await download(server.url, id, "recording.webm", out);
    const recorded = { video: await videoOnsets(webm, 0, 2), audio: toneOnsets(toneEnvelope(await decodeAudio(webm), FLIP_TONE_HZ)).map((x) => x / 48) };
    const pairOffsets = (v: number[], a: number[]) =>
      v.flatMap((tv) => {
        const ta = a.reduce((best, x) => (Math.abs(x - tv) < Math.abs(best - tv) ? x : best), Infinity);
        return Math.abs(ta - tv) <= 500 ? [tv - ta] : [];
      });
    // Flips repeat every second, so an offset is only known modulo 1000 ms: compare on that circle.
    const wrap = (ms: number) => ((((ms + 500) % 1000) + 1000) % 1000) - 500;
    const inWindow = (xs: number[]) => xs.filter((x) => x > t0 && x < t1);
    const senderOffset = quantile(pairOffsets(inWindow(sent.video), inWindow(sent.audio)), 0.5);
    const recordedOffsets = pairOffsets(recorded.video, recorded.audio);
    expect(recordedOffsets.length, `flips found: video ${recorded.video.length}, audio ${recorded.audio.length}`).toBeGreaterThanOrEqual(4);
    const syncError = quantile(recordedOffsets.map((d) => wrap(d - senderOffset)), 0.5);
    if (process.env.DEBUG_TEST) console.log(`recording A/V: ${quantile(recordedOffsets, 0.5).toFixed(1)} ms, sender ${senderOffset.toFixed(1)} ms, error ${syncError.toFixed(1)} ms (video later if > 0)`);
    expect(Math.abs(syncError), `picture minus sound in the recording, ms`).toBeLessThanOrEqual(100);
  });
});

describe("recording from the page, and who may", () => {
  it("starts and stops by signaling; CLIENT_RECORDING=off refuses it; API_TOKEN guards the REST API", async () => {
    const [p] = await joinAll(server, "sig", ["p0"]);
    try {
      expect(p!.messages.find((m) => m.type === "joined")).toMatchObject({ canRecord: true });
      p!.ws.send(JSON.stringify({ type: "record", on: true }));
      await waitFor("recording notice", () => !!p!.roomState?.recording);
      p!.ws.send(JSON.stringify({ type: "record", on: true }));
      await waitFor("refusal", () => p!.errors.some((e) => e.code === "recording_refused" && /already/.test(e.message)));
      p!.ws.send(JSON.stringify({ type: "record", on: false }));
      await waitFor("notice gone", () => p!.roomState?.recording === null);
    } finally {
      await closeAll([p!]);
    }
    const locked = await startServer({
      port: 0, host: "127.0.0.1", logLevel: "warn", recordingsDir: dir, clientRecording: false, apiToken: "s3cret", mediaWorkers: 0,
    });
    const [q] = await joinAll(locked, "locked", ["p1"]);
    try {
      expect(q!.messages.find((m) => m.type === "joined")).toMatchObject({ canRecord: false });
      q!.ws.send(JSON.stringify({ type: "record", on: true }));
      await waitFor("forbidden", () => q!.errors.some((e) => e.code === "forbidden"));
      expect(locked.recordings.current("locked")).toBeUndefined();
      for (const auth of [{}, { Authorization: "Bearer wrong" }, { Authorization: "s3cret" }] as Record<string, string>[]) {
        const r = await api(locked.url, "POST", "/api/rooms/locked/recording", auth);
        expect(r.status).toBe(401);
        expect(r.json.error).toBe("unauthorized");
      }
      expect((await api(locked.url, "GET", "/api/rooms")).status).toBe(401);
      const ok = await api(locked.url, "POST", "/api/rooms/locked/recording", { Authorization: "Bearer s3cret" });
      expect(ok.status).toBe(201);
      expect((await api(locked.url, "DELETE", "/api/rooms/locked/recording", { Authorization: "Bearer s3cret" })).status).toBe(200);
      expect((await fetch(`${locked.url}/healthz`)).status).toBe(200); // only /api is guarded
    } finally {
      await closeAll([q!]);
      await locked.close();
    }
  });
});

describe("bad requests get clear 4xx errors", () => {
  it("answers unknown rooms, stop when not recording, double start, traversal and bad ranges", async () => {
    const base = server.url;
    expect((await api(base, "POST", "/api/rooms/nowhere/recording")).json).toMatchObject({ error: "unknown_room" });
    expect((await api(base, "POST", "/api/rooms/nowhere/recording")).status).toBe(404);
    expect((await api(base, "DELETE", "/api/rooms/nowhere/recording")).status).toBe(404);
    expect((await api(base, "GET", "/api/recordings/nothing-here")).status).toBe(404);
    expect((await api(base, "PUT", "/api/recordings")).status).toBe(405);

    const ps = await joinAll(server, "bad", ["p0"]);
    try {
      const notRec = await api(base, "DELETE", "/api/rooms/bad/recording");
      expect(notRec.status).toBe(409);
      expect(notRec.json.error).toBe("not_recording");
      const { id } = await startRecording(base, "bad");
      const twice = await api(base, "POST", "/api/rooms/bad/recording");
      expect(twice.status).toBe(409);
      expect(twice.json.error).toBe("already_recording");
      expect((await api(base, "DELETE", `/api/recordings/${id}`)).status).toBe(409); // still recording
      await sleep(1500);
      await stopRecording(base, "bad");
      await waitUntilDone(base, id);

      for (const evil of ["..%2F..%2Fpackage.json", "..%2Frecording.json", "%2Fetc%2Fpasswd", "a/../../../etc/passwd", ".."]) {
        const r = await rawGet(base, `/api/recordings/${id}/files/${evil}`);
        expect(r.status, evil).toBe(400);
        expect(r.json.error).toBe("bad_name");
      }
      expect((await api(base, "GET", `/api/recordings/..%2F..%2Fetc/files/passwd`)).status).toBe(400);
      expect((await api(base, "GET", `/api/recordings/${id}/files/recording.json`)).status).toBe(404);
      expect((await api(base, "GET", `/api/recordings/${id}/files/missing.webm`)).status).toBe(404);
      for (const range of ["bytes=abc", "bytes=99999999-", "bytes=10-5", "bytes=0-1,5-9", "pages=1-2"]) {
        const r = await api(base, "GET", `/api/recordings/${id}/files/recording.webm`, { Range: range });
        expect(r.status, range).toBe(416);
        expect(r.json.error).toBe("bad_range");
        expect(r.headers.get("content-range")).toMatch(/^bytes \*\/\d+$/);
      }
      expect((await api(base, "DELETE", `/api/recordings/${id}`)).status).toBe(204);
      expect((await api(base, "GET", `/api/recordings/${id}`)).status).toBe(404);
      await expect(fs.stat(`${dir}/${id}`)).rejects.toThrow();
    } finally {
      await closeAll(ps);
    }
  });
});
