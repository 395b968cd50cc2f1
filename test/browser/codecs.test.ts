// H.264 and VP8 receivers in one room, in real Chromium: a page that takes only H.264 (its camera
// goes out in H.264 too) and one that takes only VP8. Each decodes the whole composite, every
// colour in its tile, and the browser's own stats name the codec it got. The server runs one
// encoder per codec in use, and drops the H.264 one when its last receiver leaves.
import { afterAll, beforeAll, expect, it } from "vitest";
import { openParticipant, pageText, pageTileColors, waitFor, waitForPageTiles, type BrowserParticipant } from "./pages.ts";
import { startBrowserTestServer } from "./testServer.ts";

let server: Awaited<ReturnType<typeof startBrowserTestServer>>;
let h264: BrowserParticipant | undefined;
let vp8: BrowserParticipant | undefined;
beforeAll(async () => {
  server = await startBrowserTestServer("codecs");
}, 60_000);
afterAll(async () => {
  await Promise.all([h264?.close(), vp8?.close()]);
  await server?.stop();
});

/** The inbound and outbound video codecs in the page's stats, e.g. ["video/H264", "video/H264"]. */
async function statsCodecs(p: BrowserParticipant): Promise<{ inbound?: string; outbound?: string }> {
  return p.evaluate(async () => {
    const stats = await ((window as any).mixroom.pc as RTCPeerConnection).getStats();
    const out: { inbound?: string; outbound?: string } = {};
    stats.forEach((s: any) => {
      if ((s.type === "inbound-rtp" || s.type === "outbound-rtp") && s.kind === "video" && s.codecId) {
        out[s.type === "inbound-rtp" ? "inbound" : "outbound"] = stats.get(s.codecId)?.mimeType;
      }
    });
    return out;
  });
}

it("gives an H.264-only and a VP8-only receiver the same composite, each in its codec", async () => {
  h264 = await openParticipant(server.url, "p0", "room=codecs&name=p0&codec=h264");
  vp8 = await openParticipant(server.url, "p1", "room=codecs&name=p1&codec=vp8");
  for (const p of [h264, vp8]) await waitForPageTiles(p, ["p0", "p1"], 30_000);
  await waitFor("stats name the codecs", async () => {
    const [a, b] = await Promise.all([statsCodecs(h264!), statsCodecs(vp8!)]);
    return a.inbound === "video/H264" && a.outbound === "video/H264" && b.inbound === "video/VP8" && b.outbound === "video/VP8";
  }, 15_000);
  expect(server.rooms.get("codecs")!.currentMixer!.codecs.sort()).toEqual(["h264", "vp8"]);
  // The H.264 page's camera (red) was decoded from H.264 into its tile.
  expect((await pageTileColors(vp8, 2))[0]).toBe("red");
  // Data saver: the VP8 page switches to the lowest rung and back, its picture never stopping.
  const frameHeight = () => vp8!.evaluate(async () => {
    const stats = await ((window as any).mixroom.pc as RTCPeerConnection).getStats();
    let h = 0;
    stats.forEach((s: any) => s.type === "inbound-rtp" && s.kind === "video" && (h = s.frameHeight ?? 0));
    return h;
  });
  await vp8.click("#data-saver");
  await waitFor("p1 on the 180p rung", async () => (await frameHeight()) === 180 && (await pageText(h264!, "#participants")).includes("p1 · 180p"), 15_000);
  await waitForPageTiles(vp8, ["p0", "p1"], 10_000);
  await vp8.click("#data-saver");
  await waitFor("p1 back on 720p", async () => (await frameHeight()) === 720, 15_000);
  await h264.close();
  h264 = undefined;
  await waitFor("H.264 encoder closed with its last receiver", () => server.rooms.get("codecs")?.currentMixer?.codecs.join() === "vp8", 10_000);
  await waitForPageTiles(vp8, ["p1"], 20_000);
});
