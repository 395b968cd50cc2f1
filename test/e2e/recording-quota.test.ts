// Recording quotas with real werift peers and real ffmpeg: a server-wide cap on concurrent
// recordings (MAX_RECORDINGS) and a free-disk floor (RECORDINGS_MIN_FREE_MB) that refuses new
// recordings and cleanly stops running ones.
import fs from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateFixtures } from "../../fixtures/generate.ts";
import { startServer, type RunningServer } from "../../server/main.ts";
import { metrics } from "../../telemetry/metrics.ts";
import { measureFreeMb } from "../../server/recordings/diskSpace.ts";
import { closeAll, joinAll, sleep, waitFor } from "../support/call.ts";
import { api, startRecording, stopRecording, tempDir, waitUntilDone } from "../support/recordingApi.ts";

let server: RunningServer;
let dir: string;

beforeAll(async () => {
  await generateFixtures();
  dir = await tempDir("quota");
  server = await startServer({ port: 0, host: "127.0.0.1", logLevel: "warn", recordingsDir: dir, maxRecordings: 1, recordingsMinFreeMb: 0, mediaWorkers: 0 });
});

afterAll(async () => {
  await server?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

describe("recording quotas", () => {
  it("refuses a recording beyond MAX_RECORDINGS with 429, and allows it once one stops", async () => {
    const ps = [...(await joinAll(server, "qa", ["p0"])), ...(await joinAll(server, "qb", ["p1"]))];
    try {
      const a = await startRecording(server.url, "qa");
      const refused = await api(server.url, "POST", "/api/rooms/qb/recording");
      expect(refused.status).toBe(429);
      expect(refused.json.error).toBe("too_many_recordings");
      expect(refused.json.message).toMatch(/MAX_RECORDINGS=1/);
      expect(server.recordings.current("qb")).toBeUndefined();
      // A second of media each, so post-processing has something to finish.
      await sleep(1000);
      await stopRecording(server.url, "qa");
      const b = await startRecording(server.url, "qb");
      expect(b.status).toBe("recording");
      await sleep(1000);
      await stopRecording(server.url, "qb");
      await waitUntilDone(server.url, a.id);
      await waitUntilDone(server.url, b.id);
    } finally {
      await closeAll(ps);
    }
  });

  it("refuses a recording with 507 when free space is under RECORDINGS_MIN_FREE_MB", async () => {
    const ps = await joinAll(server, "qc", ["p0"]);
    try {
      server.config.recordingsMinFreeMb = Math.ceil(await measureFreeMb(dir)) + 100_000;
      const refused = await api(server.url, "POST", "/api/rooms/qc/recording");
      expect(refused.status).toBe(507);
      expect(refused.json.error).toBe("disk_low");
      expect(refused.json.message).toMatch(/RECORDINGS_MIN_FREE_MB/);
      expect(server.recordings.current("qc")).toBeUndefined();
    } finally {
      server.config.recordingsMinFreeMb = 0;
      await closeAll(ps);
    }
  });

  it("stops running recordings cleanly when free space falls under the floor, and still finalizes them", async () => {
    const ps = await joinAll(server, "qd", ["p0", "p1"]);
    const stoppedBefore = metrics.recordingsStoppedDiskLow.get();
    let id: string;
    try {
      id = (await startRecording(server.url, "qd")).id;
      for (const p of ps) await waitFor("recording notice", () => p.roomState?.recording?.id === id, 5000);
      await sleep(2000);
      server.config.recordingsMinFreeMb = Math.ceil(await measureFreeMb(dir)) + 100_000;
      // The watcher checks every 2 s; the stop then waits for ffmpeg to close the file.
      const t0 = Date.now();
      for (;;) {
        const meta = (await api(server.url, "GET", `/api/recordings/${id}`)).json;
        if (meta.endedBy) {
          expect(meta.endedBy).toBe("disk_low");
          break;
        }
        expect(Date.now() - t0, "time until stopped for low disk (ms)").toBeLessThan(5000);
        await sleep(100);
      }
      expect(server.recordings.current("qd")).toBeUndefined();
      // Everyone sees the REC notice go away.
      for (const p of ps) await waitFor("recording-ended notice", () => p.roomState && p.roomState.recording === null, 1000);
      await waitFor("disk_low metric", () => metrics.recordingsStoppedDiskLow.get() === stoppedBefore + 1, 1000);
    } finally {
      server.config.recordingsMinFreeMb = 0;
      await closeAll(ps);
    }
    const done = await waitUntilDone(server.url, id);
    expect(done).toMatchObject({ status: "done", endedBy: "disk_low" });
    expect(done.duration).toBeGreaterThan(1.5);
    expect(done.files?.map((f) => f.name)).toContain("recording.webm");
  });
});
