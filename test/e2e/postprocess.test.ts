// Post-processing retries with backoff and gives up on what can never work, in both queues.
// The ffmpeg used fails its first run on purpose (a wrapper around the real one), as a full disk
// or a crashed encoder would.
import { chmod, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BullQueue, EmbeddedQueue, QUEUE_NAME, startBullWorker, type PostProcessSettings } from "../../server/recordings/PostProcessQueue.ts";
import { RecordingStore, type RecordingMeta } from "../../server/recordings/RecordingStore.ts";
import { FFMPEG, runFfmpeg } from "../support/ffmpegRun.ts";
import { REDIS_URL, uniquePrefix } from "../support/recordingApi.ts";

let root: string;
let store: RecordingStore;
let flakyFfmpeg: string;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "postprocess-"));
  store = new RecordingStore(path.join(root, "recordings"));
  await store.init();
  // Fails once per marker file, then behaves as the real ffmpeg.
  flakyFfmpeg = path.join(root, "flaky-ffmpeg.sh");
  await writeFile(flakyFfmpeg, `#!/bin/sh\nif [ ! -e "${root}/failed-once" ]; then touch "${root}/failed-once"; echo "simulated failure" >&2; exit 1; fi\nexec "${FFMPEG}" "$@"\n`);
  await chmod(flakyFfmpeg, 0o755);
});
afterAll(() => rm(root, { recursive: true, force: true }));

/** A stopped recording with a 3 s live part, as the recorder leaves it (its picture `videoS` long). */
async function stoppedRecording(id: string, withMedia = true, videoS = 3): Promise<RecordingMeta> {
  const meta: RecordingMeta = {
    id, room: "r", status: "pending", startedAt: new Date(Date.now() - 3000).toISOString(), stoppedAt: new Date().toISOString(),
    endedBy: "stop", parts: ["live-001.mkv"], participants: [], output: { width: 320, height: 180, fps: 30 }, progress: 0, attempts: 0,
  };
  await store.create(meta);
  if (withMedia) {
    const r = await runFfmpeg([
      "-v", "error", "-f", "lavfi", "-i", `testsrc=size=320x180:rate=30:duration=${videoS}`, "-f", "lavfi", "-i", "sine=f=440:sample_rate=48000:duration=3",
      "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "pcm_s16le", "-f", "matroska", path.join(store.dirOf(id), "live-001.mkv"),
    ]);
    expect(r.code, r.stderr).toBe(0);
  }
  return meta;
}

async function waitForStatus(id: string, want: string[], timeoutMs = 30_000): Promise<RecordingMeta> {
  const t0 = Date.now();
  for (;;) {
    const m = await store.read(id);
    if (m && want.includes(m.status)) return m;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${id} still ${m?.status} after ${timeoutMs} ms (${m?.error})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** BullMQ's own view of a job, once it has left the worker: our store says "done" or "failed" from
 * inside the processor, a moment before BullMQ moves the job and counts the attempt. */
async function settledJob(inspect: Queue, id: string, timeoutMs = 10_000) {
  const t0 = Date.now();
  for (;;) {
    const job = await inspect.getJob(id);
    const state = await job?.getState();
    if (job && (state === "completed" || state === "failed")) return { job, state };
    if (Date.now() - t0 > timeoutMs) throw new Error(`job ${id} still ${state} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const settings = (ffmpegPath: string, prefix = "unused"): PostProcessSettings => ({ ffmpegPath, mp4: true, audioKbps: 64, attempts: 3, backoffMs: 300, lockMs: 5000, prefix });

describe("embedded queue", () => {
  it("retries a failed job after a backoff and completes it", async () => {
    await rm(path.join(root, "failed-once"), { force: true });
    await stoppedRecording("emb-retry");
    const q = new EmbeddedQueue(store, settings(flakyFfmpeg));
    try {
      const t0 = Date.now();
      await q.enqueue("emb-retry");
      await q.enqueue("emb-retry"); // twice is one job
      const meta = await waitForStatus("emb-retry", ["done", "failed"]);
      expect(meta.status, meta.error).toBe("done");
      expect(meta.attempts).toBe(2);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
      expect(meta.duration).toBeGreaterThan(2.9);
      for (const f of ["recording.webm", "recording.mp4", "poster.jpg"]) expect((await stat(path.join(store.dirOf("emb-retry"), f))).size).toBeGreaterThan(0);
    } finally {
      await q.close();
    }
  });

  it("takes the poster from the first picture when the video ends before the middle", async () => {
    // As when a composite's first keyframe came late or its encoder stalled: 0.5 s of picture in 3 s.
    await stoppedRecording("emb-short-video", true, 0.5);
    const q = new EmbeddedQueue(store, settings(FFMPEG));
    try {
      await q.enqueue("emb-short-video");
      const meta = await waitForStatus("emb-short-video", ["done", "failed"]);
      expect(meta.status, meta.error).toBe("done");
      expect(meta.attempts).toBe(1);
      expect((await stat(path.join(store.dirOf("emb-short-video"), "poster.jpg"))).size).toBeGreaterThan(0);
    } finally {
      await q.close();
    }
  });

  it("marks a recording with no media failed at once, with the reason", async () => {
    await stoppedRecording("emb-empty", false);
    const q = new EmbeddedQueue(store, settings(FFMPEG));
    try {
      await q.enqueue("emb-empty");
      const meta = await waitForStatus("emb-empty", ["failed", "done"]);
      expect(meta).toMatchObject({ status: "failed", attempts: 1 });
      expect(meta.error).toMatch(/no media/);
    } finally {
      await q.close();
    }
  });
});

describe("BullMQ queue", () => {
  it("retries with backoff through Redis and completes; a hopeless job fails without retries", async () => {
    await rm(path.join(root, "failed-once"), { force: true });
    const prefix = uniquePrefix("retry");
    await stoppedRecording("bull-retry");
    await stoppedRecording("bull-empty", false);
    const s = settings(flakyFfmpeg, prefix);
    const q = await BullQueue.open(REDIS_URL, s);
    const worker = await startBullWorker(REDIS_URL, store, s);
    const inspect = new Queue(QUEUE_NAME, { connection: { url: REDIS_URL }, prefix });
    try {
      await q.enqueue("bull-retry");
      await q.enqueue("bull-retry");
      await q.enqueue("bull-empty");
      const meta = await waitForStatus("bull-retry", ["done", "failed"]);
      expect(meta.status, meta.error).toBe("done");
      expect(meta.attempts).toBe(2);
      const { job, state } = await settledJob(inspect, "bull-retry");
      expect(state).toBe("completed");
      expect(job.attemptsMade).toBe(2);
      expect(job.progress).toBe(100);
      const empty = await waitForStatus("bull-empty", ["failed", "done"]);
      expect(empty).toMatchObject({ status: "failed", attempts: 1 });
      const failed = await settledJob(inspect, "bull-empty");
      expect(failed.state).toBe("failed");
      expect(failed.job.attemptsMade).toBe(1);
    } finally {
      await worker.close();
      await q.close();
      await inspect.obliterate({ force: true });
      await inspect.close();
    }
  });
});
