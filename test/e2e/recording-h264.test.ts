// Recording an H.264 composite (VIDEO_CODECS=h264,vp8, every participant on H.264): the recorder
// copies the H.264 frames (no VP8 encoder is started for it), and post-processing makes the MP4
// by stream copy — the grid, the tones and the length all as recorded. Embedded queue.
import fs from "node:fs/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import { generateFixtures } from "../../fixtures/generate.ts";
import { fixturePaths, h264FixturePath } from "../../fixtures/participants.ts";
import { startServer, type RunningServer } from "../../server/main.ts";
import { probeDuration } from "../../server/recordings/finalize.ts";
import { closeAll, sleep, waitForTiles } from "../support/call.ts";
import { FFMPEG, runFfmpeg } from "../support/ffmpegRun.ts";
import { download, startRecording, stopRecording, tempDir, waitUntilDone } from "../support/recordingApi.ts";
import { colorsOf, decodeAudio, decodeErrors, frameAt, gridColors, toneLevels } from "../support/recordingMedia.ts";
import { SyntheticParticipant } from "../support/SyntheticParticipant.ts";

let server: RunningServer;
let dir: string;
let out: string;
beforeAll(async () => {
  await generateFixtures();
  dir = await tempDir("h264-recordings");
  out = await tempDir("h264-downloads");
  server = await startServer({ port: 0, host: "127.0.0.1", logLevel: "warn", recordingsDir: dir, videoCodecs: ["h264", "vp8"], mediaWorkers: 0 });
});
afterAll(async () => {
  await server?.close();
  await fs.rm(dir, { recursive: true, force: true });
  await fs.rm(out, { recursive: true, force: true });
});

it("records the H.264 composite as it is sent and makes the MP4 without a second video encode", async () => {
  const ids = ["p0", "p1", "p2"];
  const ps: SyntheticParticipant[] = [];
  let id: string;
  let recordedS: number;
  try {
    for (const pid of ids) {
      const p = new SyntheticParticipant({ url: server.url, room: "rech264", name: pid, ...fixturePaths(pid, "solid"), video: h264FixturePath(pid, "solid"), videoCodec: "h264", decode: true });
      await p.join();
      ps.push(p);
    }
    await waitForTiles(ps[0]!, ids, 15_000);
    const started = await startRecording(server.url, "rech264");
    id = started.id;
    expect(started.output.codec).toBe("h264");
    const t0 = performance.now();
    await sleep(5000);
    // The recording took the H.264 output everyone already gets: no VP8 encoder was started for it.
    expect(server.rooms.get("rech264")!.currentMixer!.codecs).toEqual(["h264"]);
    await stopRecording(server.url, "rech264");
    recordedS = (performance.now() - t0) / 1000;
  } finally {
    await closeAll(ps);
  }
  const meta = await waitUntilDone(server.url, id);
  expect((meta.files ?? []).map((f) => f.name).sort()).toEqual(["poster.jpg", "recording.mp4"]);
  const mp4 = await download(server.url, id, "recording.mp4", out);
  expect(await decodeErrors(mp4)).toBe("");
  const info = await runFfmpeg(["-i", mp4]);
  expect(info.stderr).toMatch(/Video: h264 \(Constrained Baseline\)/);
  expect(info.stderr).toMatch(/Audio: aac/);
  const duration = await probeDuration(FFMPEG, mp4);
  expect(Math.abs(duration - recordedS), `mp4 ${duration}s, recorded ${recordedS}s`).toBeLessThanOrEqual(0.5);
  expect(gridColors(await frameAt(mp4, duration / 2), 3)).toEqual(colorsOf(ids));
  const levels = toneLevels(await decodeAudio(mp4, 1, 3), ids);
  for (const pid of ids) expect(levels[pid], JSON.stringify(levels)).toBeGreaterThan(-30);
}, 90_000);
