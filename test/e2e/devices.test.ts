// Devices without a camera or a microphone, and viewers: each joins with what it has (the missing
// device offered recvonly, as a browser does), and the server spends no decoder on what is not sent.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { liveFfmpegProcesses } from "../../mixer/FfmpegProcess.ts";
import { gridLayout } from "../../mixer/layout.ts";
import { metrics } from "../../telemetry/metrics.ts";
import type { RunningServer } from "../../server/main.ts";
import { closeAll, heardLevels, joinAll, startTestServer, tileRgb, waitFor, waitForTiles } from "../support/call.ts";
import type { SyntheticParticipant } from "../support/SyntheticParticipant.ts";

let server: RunningServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});
// Every test counts the server's ffmpeg children by role, and its Opus codecs: start from none.
beforeEach(async () => {
  await waitFor("no ffmpeg child or Opus codec left from the last test", () => liveFfmpegProcesses().length === 0 && opus("decoder") + opus("encoder") === 0, 10_000);
});

const children = (role: string) => liveFfmpegProcesses().filter((c) => c.role === role).length;
/** Opus decoders or encoders running in the server process (the default OPUS_ENGINE); none are children. */
const opus = (kind: "decoder" | "encoder") => {
  expect(children(`audio-${kind}`)).toBe(0);
  return metrics.audioCodecs.get({ kind, engine: "inprocess" });
};
const MIC_ONLY = { audio: true, video: false };
const CAMERA_ONLY = { audio: false, video: true };
const VIEWER = { audio: false, video: false };
const ALL = ["p0", "p1", "p2"];

function listed(by: SyntheticParticipant, who: SyntheticParticipant) {
  return (by.participants as unknown as { id: string; audio: boolean; video: boolean; sends: unknown }[]).find((p) => p.id === who.participantId);
}

/** Waits until `p` hears each of `heard` at a clear level and every one of `silent` at least 30 dB below. */
async function waitForHearing(p: SyntheticParticipant, heard: string[], silent: string[]): Promise<void> {
  let last: Record<string, number> = {};
  await waitFor(`${heard.join("+")} heard, ${silent.join("+")} not`, () => {
    last = heardLevels(p, ALL);
    const floor = Math.min(...heard.map((id) => last[id]));
    return floor > -25 && silent.every((id) => floor - last[id] >= 30);
  }, 10_000).catch((e) => {
    throw new Error(`${(e as Error).message}; levels ${JSON.stringify(last)}`);
  });
}

describe("a viewer (camera and mic offered recvonly)", () => {
  it("sees and hears the room, has no tile of its own, and costs no decoder or own encoder", async () => {
    const senders = await joinAll(server, "watch", ["p0", "p1"]);
    const [viewer] = await joinAll(server, "watch", ["p2"], { sends: VIEWER });
    try {
      // Two tiles, not three: the viewer is not in the grid.
      await waitForTiles(viewer, ["p0", "p1"]);
      await waitForTiles(senders[0], ["p0", "p1"]);
      await waitForHearing(viewer, ["p0", "p1"], ["p2"]);
      const t = gridLayout(2, 1280, 720)[0];
      expect(server.rooms.get("watch")!.state().tile).toEqual({ width: t.w, height: t.h });
      expect(listed(senders[0], viewer)).toMatchObject({ audio: false, video: false, sends: { audio: false, video: false } });
      expect(children("tile-decoder")).toBe(2);
      expect(opus("decoder")).toBe(2);
      // The two speakers' own mix-minus encoders and the one shared full mix the viewer hears.
      expect(opus("encoder")).toBe(3);
    } finally {
      await closeAll([...senders, viewer]);
    }
  });
});

describe("a device without a camera", () => {
  it("is heard and shown as its named placeholder tile, with no video decoder", async () => {
    const [full] = await joinAll(server, "nocam", ["p0"]);
    const [micOnly] = await joinAll(server, "nocam", ["p1"], { sends: MIC_ONLY });
    try {
      await waitFor("p0 red and p1's placeholder (dark grey) in the second tile", () => {
        if (!full.latestFrame || !micOnly.latestFrame) return false;
        const [r0] = tileRgb(full, 0, 2);
        const ph = tileRgb(full, 1, 2);
        return r0 > 150 && ph.every((v) => v > 25 && v < 75);
      });
      await waitForHearing(full, ["p1"], []);
      await waitForHearing(micOnly, ["p0"], ["p1"]);
      expect(listed(full, micOnly)).toMatchObject({ audio: true, video: false, sends: MIC_ONLY });
      expect(children("tile-decoder")).toBe(1);
      expect(opus("decoder")).toBe(2);
    } finally {
      await closeAll([full, micOnly]);
    }
  });
});

describe("a device without a microphone", () => {
  it("is seen in its tile, hears the room, and costs no audio decoder or own encoder", async () => {
    const [full] = await joinAll(server, "nomic", ["p0"]);
    const [cameraOnly] = await joinAll(server, "nomic", ["p1"], { sends: CAMERA_ONLY });
    try {
      await waitForTiles(full, ["p0", "p1"]);
      await waitForTiles(cameraOnly, ["p0", "p1"]);
      await waitForHearing(cameraOnly, ["p0"], ["p1"]);
      expect(listed(full, cameraOnly)).toMatchObject({ audio: false, video: true, sends: CAMERA_ONLY });
      expect(children("tile-decoder")).toBe(2);
      expect(opus("decoder")).toBe(1);
      expect(opus("encoder")).toBe(2); // p0's own and the shared full mix
      // A `media` claiming a mic it does not send changes nothing.
      cameraOnly.send({ type: "media", audio: true, video: true });
      await new Promise((r) => setTimeout(r, 300));
      expect(listed(full, cameraOnly)).toMatchObject({ audio: false, video: true });
    } finally {
      await closeAll([full, cameraOnly]);
    }
  });
});
