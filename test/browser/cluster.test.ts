// The page across several media nodes: loaded from one node, it follows `redirect` to the node that
// holds its room (over WebSocket in Chromium, over long polling in Firefox: a cross-origin session
// on the other node), and when that node dies it rejoins through its own address and the room is
// placed anew. Real server processes in one Redis registry, real browsers.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateFixtures } from "../../fixtures/generate.ts";
import { participant } from "../../fixtures/participants.ts";
import { nodesSeen, reconnecting, startNode, stopAllNodes, waitForNodes, type Node } from "../support/cluster.ts";
import { api, uniquePrefix } from "../support/recordingApi.ts";
import { openFirefoxParticipant } from "./firefox.ts";
import { openParticipant, pageTileColors, waitFor, type BrowserParticipant } from "./pages.ts";

beforeAll(() => generateFixtures());
afterAll(() => stopAllNodes());

/** The page shows exactly these participants' colours, in any order (who joined first varies). */
async function pageShows(p: BrowserParticipant, ids: string[]): Promise<boolean> {
  const want = ids.map((id) => participant(id).color.name).sort().join();
  return (await pageTileColors(p, ids.length)).sort().join() === want;
}

/** The room's node as the registry's API lists it (asked of `base`). */
async function roomNode(base: string, room: string): Promise<string | undefined> {
  const rooms = (await api(base, "GET", "/api/rooms")).json as { id: string; node: string; participants: { name: string }[] }[];
  return rooms.find((r) => r.id === room && r.participants.length === 2)?.node;
}

async function twoNodesAndARoom(room: string): Promise<{ owner: Node; other: Node; p0: ReturnType<typeof reconnecting> }> {
  const prefix = uniquePrefix(`page-${room}`);
  const nodes = await Promise.all([startNode(prefix), startNode(prefix)]);
  await waitForNodes(nodes[0]!.url, 2);
  const p0 = reconnecting(nodes.map((n) => n.url), room, "p0");
  await waitFor("p0 joined", () => p0.current()?.participantId, 20_000);
  const owner = nodes.find((n) => n.url === p0.current().node)!;
  return { owner, other: nodes.find((n) => n !== owner)!, p0 };
}

describe("the page across nodes", () => {
  it("Chromium, loaded from one node, joins the room on the other; when that node dies it is back with everyone on a live one", async () => {
    const { owner, other, p0 } = await twoNodesAndARoom("hop");
    const page = await openParticipant(other.url, "p1", "room=hop&name=p1&processing=off");
    try {
      await waitFor("the page sees p0 and itself", () => pageShows(page, ["p0", "p1"]), 30_000);
      expect(await roomNode(other.url, "hop"), "the page was sent to the room's node").toBe(owner.url);
      expect(await page.evaluate(() => location.origin)).toBe(other.url);

      await owner.killGroup();
      await waitFor("the room again, on the live node", async () => (await roomNode(other.url, "hop")) === other.url, 20_000);
      await waitFor("the page sees p0 and itself again", () => pageShows(page, ["p0", "p1"]), 20_000);
    } finally {
      await page.close();
      await p0.stop();
    }
  }, 120_000);

  it("Firefox over long polling follows the redirect to the other node", async () => {
    const { owner, other, p0 } = await twoNodesAndARoom("poll");
    const ff = await openFirefoxParticipant(other.url, "p1", "room=poll&name=p1&processing=off&transport=longpoll");
    try {
      await waitFor("Firefox sees p0 and its own camera", async () => {
        const c = await pageTileColors(ff, 2);
        return c.includes(participant("p0").color.name) && (await roomNode(other.url, "poll")) === owner.url;
      }, 30_000);
      expect(await ff.evaluate(() => (window as any).mixroom.transport?.kind)).toBe("longpoll");
      expect((await nodesSeen(other.url)).find((n) => n.url === owner.url)?.participants).toBeGreaterThanOrEqual(1);
    } finally {
      await ff.close();
      await p0.stop();
    }
  }, 120_000);
});
