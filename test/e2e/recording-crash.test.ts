// Nothing recorded is lost when processes die: a worker killed mid-job, a server killed
// mid-recording (SIGKILL of Node and all its ffmpeg children), and the embedded mode
// restarted during finalization. Real processes, real Redis, real ffmpeg.
import fs from "node:fs/promises";
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateFixtures } from "../../fixtures/generate.ts";
import { startServer, type RunningServer } from "../../server/main.ts";
import { probeDuration } from "../../server/recordings/finalize.ts";
import { QUEUE_NAME } from "../../server/recordings/PostProcessQueue.ts";
import { closeAll, joinAll, sleep, waitFor, waitForTiles } from "../support/call.ts";
import { FFMPEG } from "../support/ffmpegRun.ts";
import { api, download, REDIS_URL, startRecording, stopRecording, tempDir, uniquePrefix, waitUntilDone } from "../support/recordingApi.ts";
import { colorsOf, decodeErrors, frameAt, gridColors } from "../support/recordingMedia.ts";
import { startServerProcess, startWorkerProcess, type ChildService } from "../support/serverProcess.ts";

const dirs: string[] = [];
const children: ChildService[] = [];
let out: string;

beforeAll(async () => {
  await generateFixtures();
  out = await tempDir("crash-downloads");
  dirs.push(out);
});

afterAll(async () => {
  for (const c of children) await c.killGroup();
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

async function readMeta(dir: string, id: string) {
  try {
    return JSON.parse(await fs.readFile(`${dir}/${id}/recording.json`, "utf8"));
  } catch {
    return undefined;
  }
}

/** Polls the metadata file itself (no server needed) until `ok` holds. */
async function waitForMeta(dir: string, id: string, what: string, ok: (m: any) => boolean, timeoutMs = 60_000) {
  const t0 = Date.now();
  for (;;) {
    const m = await readMeta(dir, id);
    if (m && ok(m)) return m;
    if (Date.now() - t0 > timeoutMs) throw new Error(`recording ${id}: no ${what} after ${timeoutMs} ms: ${JSON.stringify(m)}`);
    await sleep(25);
  }
}

/** A three-person call recorded for `seconds` on `base`; returns the recording id and start time. */
async function recordCall(base: string, room: string, seconds: number, stop = true) {
  const ids = ["p0", "p1", "p2"];
  const ps = await joinAll({ url: base } as RunningServer, room, ids);
  await waitForTiles(ps[0]!, ids);
  const { id } = await startRecording(base, room);
  const t0 = Date.now();
  await sleep(seconds * 1000);
  if (stop) await stopRecording(base, room);
  return { id, t0, ps };
}

async function expectPlayable(base: string, id: string, minS: number, maxS: number) {
  const webm = await download(base, id, "recording.webm", out);
  expect(await decodeErrors(webm)).toBe("");
  const d = await probeDuration(FFMPEG, webm);
  if (process.env.DEBUG_TEST) console.log(`${id}: ${d}s, expected ${minS}..${maxS}`);
  expect(d, "duration of the finished recording (s)").toBeGreaterThanOrEqual(minS);
  expect(d, "duration of the finished recording (s)").toBeLessThanOrEqual(maxS);
  expect(gridColors(await frameAt(webm, d / 2), 3)).toEqual(colorsOf(["p0", "p1", "p2"]));
  const mp4 = await download(base, id, "recording.mp4", out);
  expect(await decodeErrors(mp4)).toBe("");
}

describe("a worker killed mid-job (BullMQ)", () => {
  let server: RunningServer;
  const prefix = uniquePrefix("stall");
  afterAll(() => server?.close());

  it("has its job picked up again by another worker, which completes it", async () => {
    const dir = await tempDir("stall");
    dirs.push(dir);
    // The server only queues; dedicated workers (npm run worker) do the work.
    server = await startServer({ port: 0, host: "127.0.0.1", logLevel: "warn", recordingsDir: dir, redisUrl: REDIS_URL, queuePrefix: prefix, postprocessWorker: false });
    const { id, ps } = await recordCall(server.url, "stall", 5);
    await closeAll(ps);
    const env = { REDIS_URL, QUEUE_PREFIX: prefix, RECORDINGS_DIR: dir, JOB_LOCK_MS: "2000" };
    const first = await startWorkerProcess(env);
    children.push(first);
    await waitForMeta(dir, id, "processing", (m) => m.status === "processing");
    await first.killGroup();
    // Killed before it could finish: the MP4 was never completed.
    await expect(fs.stat(`${dir}/${id}/recording.mp4`)).rejects.toThrow();
    const second = await startWorkerProcess(env);
    children.push(second);
    const meta = await waitUntilDone(server.url, id, 60_000);
    expect(meta.attempts, "tries, counting the one that was killed").toBe(2);
    const queue = new Queue(QUEUE_NAME, { connection: { url: REDIS_URL }, prefix });
    try {
      const job = await queue.getJob(id);
      expect(job?.finishedOn, "the BullMQ job completed").toBeGreaterThan(0);
      expect(job?.stalledCounter, "BullMQ saw the first worker stall").toBeGreaterThanOrEqual(1);
    } finally {
      await queue.close();
    }
    expect(second.log()).toContain("post-processing");
    await expectPlayable(server.url, id, 4.5, 5.6);
    // The killed worker's half-written files are gone.
    expect((await fs.readdir(`${dir}/${id}`)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    await second.stop();
  });
});

describe("the server killed with SIGKILL mid-recording", () => {
  it("finalizes the recording after a restart, missing at most the last 2 s", async () => {
    const dir = await tempDir("sigkill");
    dirs.push(dir);
    const env = { REDIS_URL, QUEUE_PREFIX: uniquePrefix("sigkill"), RECORDINGS_DIR: dir };
    const a = await startServerProcess(env);
    children.push(a);
    const { id, t0, ps } = await recordCall(a.url, "crash", 6, false);
    const killedAfterS = (Date.now() - t0) / 1000;
    await a.killGroup(); // Node and every ffmpeg child, as a power cut would
    await closeAll(ps);
    expect((await readMeta(dir, id)).status).toBe("recording");
    const b = await startServerProcess(env);
    children.push(b);
    const meta = await waitUntilDone(b.url, id);
    expect(meta.endedBy).toBe("crash");
    expect(b.log()).toContain("recording cut off by a crash");
    await expectPlayable(b.url, id, killedAfterS - 2, killedAfterS + 0.5);
    await b.stop();
  });
});

describe("embedded post-processing (no Redis)", () => {
  it("finalizes in-process, and a restart during finalization still completes it", async () => {
    const dir = await tempDir("embedded");
    dirs.push(dir);
    const env = { REDIS_URL: "", RECORDINGS_DIR: dir };
    const a = await startServerProcess(env);
    children.push(a);
    expect(a.log()).toContain('"postprocessing":"embedded"');
    const { id, ps } = await recordCall(a.url, "embedded", 5);
    await closeAll(ps);
    await waitForMeta(dir, id, "processing", (m) => m.status === "processing");
    await a.killGroup();
    expect((await readMeta(dir, id)).status).toBe("processing");
    const b = await startServerProcess(env);
    children.push(b);
    const meta = await waitUntilDone(b.url, id);
    expect(meta.attempts, "tries, counting the one the restart cut off").toBe(2);
    await expectPlayable(b.url, id, 4.5, 5.6);
    // The same recording, finished once, is not processed again by a later start.
    await b.stop();
    const c = await startServerProcess(env);
    children.push(c);
    await sleep(1000);
    expect((await api(c.url, "GET", `/api/recordings/${id}`)).json).toMatchObject({ status: "done", attempts: 2 });
    await c.stop();
  });
});
