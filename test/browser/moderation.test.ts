// Room tokens and moderation in real browsers: pages join with `?token=`, a moderator's page mutes
// and removes someone with its buttons (the removed page says so and does not come back), the REST
// API mutes and ends the room, and a page without a token is refused in plain words.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mintRoomToken, type Right } from "../../server/roomTokens.ts";
import {
  openParticipant, pageLargeTileColor, pageSelect, pageText, pageToneLevels, pageVisible, participantNames, waitFor, waitForPageTiles, type BrowserParticipant,
} from "./pages.ts";
import { startBrowserTestServer } from "./testServer.ts";

const SECRET = "moderation-test-secret-".padEnd(40, "x");
const API = "api-token-for-tests";
let server: Awaited<ReturnType<typeof startBrowserTestServer>>;
beforeAll(async () => {
  server = await startBrowserTestServer("moderation", { authSecret: SECRET, apiToken: API });
}, 60_000);
afterAll(async () => {
  await server?.stop();
});

async function joinWithToken(id: string, room: string, rights: Right[]): Promise<BrowserParticipant> {
  const { token } = await mintRoomToken(SECRET, { room, name: id, rights, ttlS: 600 });
  return openParticipant(server.url, id, `room=${room}&name=whatever&processing=off&token=${encodeURIComponent(token)}`);
}

const api = (method: string, path: string, body?: unknown) =>
  fetch(`${server.url}${path}`, { method, headers: { authorization: `Bearer ${API}`, "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });

describe("a moderated room", () => {
  let mod: BrowserParticipant, p1: BrowserParticipant, p2: BrowserParticipant;
  beforeAll(async () => {
    mod = await joinWithToken("p0", "townhall", ["publish", "subscribe", "moderate"]);
    p1 = await joinWithToken("p1", "townhall", ["publish", "subscribe"]);
    p2 = await joinWithToken("p2", "townhall", ["publish", "subscribe"]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([mod, p1, p2].map((p) => p?.close()));
  });

  it("takes names from the tokens and shows moderator controls only to the moderator", async () => {
    await waitFor("three listed", async () => (await participantNames(mod)).length === 3);
    expect((await participantNames(p1)).sort()).toEqual(["p0", "p1", "p2"]);
    expect(await mod.evaluate(() => document.querySelectorAll("#participants button[data-action=kick]").length)).toBe(2);
    expect(await p1.evaluate(() => document.querySelectorAll("#participants button.mod").length)).toBe(0);
    expect(await pageVisible(mod, "#end-room")).toBe(true);
    expect(await pageVisible(p1, "#end-room")).toBe(false);
  });

  it("the moderator's Mute takes p1 out of the mix and p1's page says so; REST lets it back", async () => {
    const ids = ["p0", "p1", "p2"];
    await waitFor("p2 hears p1", async () => (await pageToneLevels(p2, ids)).p1 > -60, 30_000);
    const p1Id = await p1.evaluate(() => (window as any).mixroom.participantId as string);
    await mod.click(`#participants li[data-id="${p1Id}"] button[data-action=mute]`);
    await waitFor("p1 told", async () => (await pageText(p1, "#error")).includes("A moderator turned off your microphone and camera"));
    await waitFor("p1 gone from p2's mix", async () => {
      const l = await pageToneLevels(p2, ids);
      return l.p0 - l.p1 >= 30;
    }, 10_000);
    expect((await api("POST", `/api/rooms/townhall/participants/${p1Id}/mute`, { audio: false, video: false })).status).toBe(200);
    await waitFor("p1 back in p2's mix", async () => (await pageToneLevels(p2, ids)).p1 > -60, 10_000);
  });

  it("lists who speaks; the moderator's Pin puts p2 large on every page, and its layout menu goes back to the grid", async () => {
    // Every page sends its tone: the lists mark speakers, from the server's voice activity.
    await waitFor("someone marked speaking", async () => (await p1.evaluate(() => document.querySelectorAll("#participants li.speaking").length)) > 0, 15_000);
    expect(await pageVisible(mod, "#layout-select")).toBe(true);
    expect(await pageVisible(p1, "#layout-select")).toBe(false);
    expect(await p1.evaluate(() => document.querySelectorAll("#participants button[data-action=pin]").length)).toBe(0);
    const p2Id = await p2.evaluate(() => (window as any).mixroom.participantId as string);
    await mod.click(`#participants li[data-id="${p2Id}"] button[data-action=pin]`);
    await waitFor("p1 plays p2 large", async () => (await pageLargeTileColor(p1)) === "blue", 15_000);
    await waitFor("the lists say pinned", async () => (await pageText(p1, `#participants li[data-id="${p2Id}"]`)).includes("pinned"));
    await pageSelect(mod, "#layout-select", "grid");
    await waitForPageTiles(p1, ["p0", "p1", "p2"]);
  });

  it("the moderator removes p2: its page says so and does not rejoin", async () => {
    const p2Id = await p2.evaluate(() => (window as any).mixroom.participantId as string);
    await mod.click(`#participants li[data-id="${p2Id}"] button[data-action=kick]`);
    await waitFor("p2 told", async () => (await pageText(p2, "#error")).includes("You were removed from the room"));
    await waitFor("p2 off the list", async () => !(await participantNames(mod)).includes("p2"));
    await new Promise((r) => setTimeout(r, 3000)); // longer than the page's first reconnect delay
    expect(await p2.evaluate(() => (window as any).mixroom.participantId)).toBe(p2Id);
    expect(await pageText(p2, "#state")).toBe("ended");
    expect(await participantNames(mod)).not.toContain("p2");
  });

  it("REST ends the room: every page is told", async () => {
    expect((await api("DELETE", "/api/rooms/townhall")).status).toBe(204);
    for (const p of [mod, p1]) await waitFor(`${p.id} told`, async () => (await pageText(p, "#error")).includes("The room has ended"));
    await waitFor("room gone", () => !server.rooms.get("townhall"));
  });
});

describe("without a token", () => {
  it("a page is refused in plain words and does not keep retrying", async () => {
    const p = await openParticipant(server.url, "p3", "room=locked&name=p3");
    try {
      await waitFor("refusal shown", async () => (await pageText(p, "#error")).includes("invitation link is missing, expired or not valid"));
      expect(await pageText(p, "#state")).toBe("ended");
    } finally {
      await p.close();
    }
  });

  it("/api and /metrics need the API token", async () => {
    expect((await fetch(`${server.url}/api/rooms`)).status).toBe(401);
    expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
    expect((await api("GET", "/metrics")).status).toBe(200);
  });
});
