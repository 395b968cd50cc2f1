// Real pages on a server whose rooms run in two media workers: Chromium with Firefox in one room,
// Chromium with a camera-less viewer in another, each room on its own worker. Killing one worker
// (SIGKILL, as a crash in native code would) ends only its room: both its pages reconnect by
// themselves and are back in the call, while the other room's pages never lose their picture.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBrowserTestServer } from "./testServer.ts";
import { closestColor } from "../support/pixels.ts";
import { PALETTE } from "../../fixtures/participants.ts";
import { openFirefoxParticipant } from "./firefox.ts";
import { openParticipant, pageText, pageTileColors, pageTileRgb, waitFor, type BrowserParticipant } from "./pages.ts";

let server: Awaited<ReturnType<typeof startBrowserTestServer>>;
let p0: BrowserParticipant, ff: BrowserParticipant, p1: BrowserParticipant, viewer: BrowserParticipant;
const query = (id: string, room: string) => `room=${room}&name=${id}&processing=off`;
const isPlaceholderOrBlack = (rgb: number[]) => Math.max(...rgb) < 80;

/**
 * Red (p0) in one tile and Firefox's live camera in the other, as `p` sees them. Tiles go in join
 * order, and after a reconnect either page may be first; Firefox's camera cycles through colours.
 */
async function seesMixedRoom(p: BrowserParticipant): Promise<boolean | undefined> {
  const c = await pageTileColors(p, 2);
  const rgb = await pageTileRgb(p, 2);
  seen.set(p.id, `${JSON.stringify(c)} ${JSON.stringify(rgb?.map((x) => x.map(Math.round)))} at ${Date.now() - t0} ms`);
  return (!!rgb && [0, 1].some((i) => c[i] === "red" && !isPlaceholderOrBlack(rgb[1 - i]!))) || undefined;
}
/** What each page showed when last looked at (a timed-out wait says it). */
const seen = new Map<string, string>();
let t0 = Date.now();

beforeAll(async () => {
  server = await startBrowserTestServer("workers", { mediaWorkers: 2 });
  p0 = await openParticipant(server.url, "p0", query("p0", "wmixed"));
  ff = await openFirefoxParticipant(server.url, "ff", query("ff", "wmixed"));
  p1 = await openParticipant(server.url, "p1", query("p1", "wview"));
  viewer = await openParticipant(server.url, "viewer", query("viewer", "wview"), { devices: false });
}, 90_000);

afterAll(async () => {
  await Promise.all([p0, ff, p1, viewer].map((p) => p?.close()));
  await server?.stop();
});

/**
 * The two rooms on different workers. After a kill the mixed room's pages come back on the worker
 * that survived (the least loaded ready one): a second run of the kill test (vitest's retry) first
 * moves the mixed room back out, by leaving and rejoining once the restarted worker is idle.
 */
async function roomsApart(): Promise<void> {
  const w = server.workers!;
  if (w.workerOf("wmixed")?.index !== w.workerOf("wview")?.index) return;
  await Promise.all([p0, ff].map((p) => p.close()));
  await waitFor("the mixed room gone and every worker ready", () => !w.workerOf("wmixed") && w.list().every((x) => x.ready), 20_000);
  p0 = await openParticipant(server.url, "p0", query("p0", "wmixed"));
  ff = await openFirefoxParticipant(server.url, "ff", query("ff", "wmixed"));
  for (const p of [p0, ff]) await waitFor(`${p.id} sees red and Firefox`, () => seesMixedRoom(p), 30_000);
  expect(w.workerOf("wmixed")!.index).not.toBe(w.workerOf("wview")!.index);
}

describe("pages on media workers", () => {
  it("each room on its own worker, both calls mixed", async () => {
    for (const p of [p0, ff]) await waitFor(`${p.id} sees red and Firefox`, () => seesMixedRoom(p), 30_000);
    for (const p of [p1, viewer]) await waitFor(`${p.id} sees green`, async () => (await pageTileColors(p, 2))[0] === "green", 30_000);
    expect(server.workers!.workerOf("wmixed")!.index).not.toBe(server.workers!.workerOf("wview")!.index);
  }, 60_000);

  it("a killed worker's pages reconnect by themselves; the other room keeps its picture", async () => {
    await roomsApart();
    const dead = server.workers!.workerOf("wmixed")!;
    const other: string[] = [];
    let watching = true;
    t0 = Date.now();
    const watch = (async () => {
      while (watching) {
        other.push(...(await Promise.all([p1, viewer].map(async (p) => {
          const rgb = await pageTileRgb(p, 2);
          const c = (rgb ? closestColor(rgb[0]!, PALETTE, 90) : undefined) ?? "none";
          return c === "green" ? c : `${c} ${JSON.stringify(rgb?.[0]?.map(Math.round))} at ${Date.now() - t0} ms`;
        }))));
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
    process.kill(dead.pid!, "SIGKILL");
    t0 = Date.now();
    // The pages notice (a `shutdown`, then the connection closes) and come back on their own.
    await waitFor("p0 reconnecting", async () => /reconnect/i.test(await pageText(p0, "body")), 10_000);
    if (process.env.DEBUG_TEST) console.log("reconnecting at", Date.now() - t0);
    for (const p of [p0, ff]) {
      await waitFor(`${p.id} back in the call`, () => seesMixedRoom(p), 30_000).catch((e: Error) => {
        throw new Error(`${e.message}; it last showed ${seen.get(p.id)}`);
      });
      if (process.env.DEBUG_TEST) console.log(p.id, "back at", Date.now() - t0, await pageTileRgb(p, 2));
    }
    const backS = (Date.now() - t0) / 1000;
    if (process.env.DEBUG_TEST) console.log({ backS });
    expect(backS).toBeLessThan(30);
    watching = false;
    await watch;
    // The other room's pages kept their picture throughout.
    expect(other.length).toBeGreaterThan(4);
    expect(other.filter((c) => c !== "green")).toEqual([]);
    expect(server.workers!.workerOf("wmixed")).toBeDefined();
  }, 90_000);
});
