// H.264 and VP8 participants in one room, synthetic werift peers: H.264 cameras (x264 constrained
// baseline, as browsers send them) are decoded into their tiles, and each receiver decodes the
// composite in its own codec; one encoder per codec in use.
import { afterAll, beforeAll, expect, it } from "vitest";
import { fixturePaths, h264FixturePath } from "../../fixtures/participants.ts";
import type { RunningServer } from "../../server/main.ts";
import { closeAll, heardLevels, startTestServer, waitFor, waitForTiles } from "../support/call.ts";
import { SyntheticParticipant } from "../support/SyntheticParticipant.ts";

let server: RunningServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

it("mixes H.264 and VP8 cameras and gives each receiver the composite in its codec", async () => {
  const ids = ["p0", "p1", "p2"];
  const ps: SyntheticParticipant[] = [];
  try {
    for (const [i, id] of ids.entries()) {
      const h264 = i < 2;
      const f = fixturePaths(id, "solid");
      const p = new SyntheticParticipant({ url: server.url, room: "codecs", name: id, ...f, ...(h264 ? { video: h264FixturePath(id, "solid"), videoCodec: "h264" as const } : {}), decode: true });
      await p.join();
      ps.push(p);
    }
    for (const p of ps) await waitForTiles(p, ids, 15_000);
    expect(server.rooms.get("codecs")!.currentMixer!.outputsInUse).toEqual({ "h264@0": 2, "vp8@0": 1 });
    await waitFor("everyone hears the other two", () =>
      ps.every((p, i) => {
        const l = heardLevels(p, ids);
        return ids.every((id, j) => j === i || l[id]! > -25);
      }), 10_000);
  } finally {
    await closeAll(ps);
  }
});
