// The browser client end to end in real Chromium (fake camera/mic files per participant):
// composite + mix-minus, long polling, TURN relay through coturn, chat, mute/camera/leave,
// and reconnecting after the signaling connection drops.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBrowserTestServer } from "./testServer.ts";
import { startCoturn, type Coturn } from "./coturn.ts";
import {
  openParticipant, pageText, pageTileColors, pageVisible, pageTileRgb, pageToneLevels, participantNames, waitFor, waitForPageTiles, type BrowserParticipant,
} from "./pages.ts";

const TURN_SECRET = "test-secret-" + Math.random().toString(36).slice(2);
let server: Awaited<ReturnType<typeof startBrowserTestServer>>;
let turn: Coturn;

beforeAll(async () => {
  turn = await startCoturn(TURN_SECRET);
  server = await startBrowserTestServer("browser", {
    turnUrls: [`turn:127.0.0.1:${turn.port}?transport=udp`], turnSecret: TURN_SECRET, turnTtlS: 600,
    // coturn relays from 127.0.0.1 (loopback-only tests), so the server must offer a loopback candidate too.
    iceExtraHosts: ["127.0.0.1"],
  });
}, 60_000);
afterAll(async () => {
  await server?.stop();
  turn?.close();
});

const join = (id: string, room: string, extra = "") => openParticipant(server.url, id, `room=${room}&name=${id}&processing=off${extra}`);

describe("three people in Chromium", () => {
  const ids = ["p0", "p1", "p2"];
  let pages: BrowserParticipant[] = [];
  beforeAll(async () => {
    for (const id of ids) pages.push(await join(id, "browsers"));
  }, 60_000);
  afterAll(async () => {
    await Promise.all(pages.map((p) => p.close()));
  });

  it("shows every colour in its tile and plays the two other tones, not one's own", async () => {
    for (const p of pages) await waitForPageTiles(p, ids, 30_000);
    for (const [i, p] of pages.entries()) {
      const levels = await waitFor(`${p.id} hears both others`, async () => {
        const l = await pageToneLevels(p, ids);
        return ids.every((id, j) => j === i || l[id] > -60) && l;
      }, 15_000);
      for (const [j, id] of ids.entries()) {
        if (j !== i) expect(levels[id] - levels[ids[i]], `${p.id} hears ${JSON.stringify(levels)}`).toBeGreaterThanOrEqual(30);
      }
    }
  });

  it("relays a chat message to the other two with the sender's name", async () => {
    await pages[0].fill("#chat-input", "hello from p0 ✓");
    await pages[0].click("#chat-form button");
    for (const p of pages.slice(1)) {
      await waitFor(`${p.id} shows the chat`, async () => (await pageText(p, "#chat-log"))?.includes("p0: hello from p0 ✓"));
    }
  });

  it("records from the page: everyone sees the recording notice, and another participant can stop it", async () => {
    for (const p of pages) expect(!(await pageVisible(p, "#rec")), `${p.id} notice before`).toBe(true);
    await pages[0].click("#record");
    for (const p of pages) {
      await waitFor(`${p.id} shows it is recorded`, async () => await pageVisible(p, "#rec"));
      expect(await pageText(p, "#record")).toBe("Stop recording");
    }
    await new Promise((r) => setTimeout(r, 2000));
    await pages[1].click("#record");
    for (const p of pages) await waitFor(`${p.id} notice gone`, async () => !(await pageVisible(p, "#rec")));
    // The pages hear of the stop at once; the file is closed (its last cluster written) just after.
    const rec = await waitFor("the recording stopped", async () => {
      const [r] = (await (await fetch(`${server.url}/api/recordings`)).json()) as { room: string; status: string }[];
      return r && r.status !== "recording" ? r : undefined;
    });
    expect(rec).toMatchObject({ room: "browsers" });
    expect(["pending", "processing", "done"]).toContain(rec.status);
  });

  it("mute removes the tone, camera off shows the placeholder, and both come back", async () => {
    await pages[1].click("#mute");
    await waitFor("p1's tone gone for p0", async () => {
      const l = await pageToneLevels(pages[0], ids);
      return l.p2 - l.p1 >= 30 && l;
    });
    await waitFor("participant list shows p1 muted", async () => (await pageText(pages[0], "#participants"))?.includes("muted"));
    await pages[1].click("#camera");
    await waitFor("placeholder in p1's tile", async () => {
      const c = await pageTileColors(pages[0], 3);
      const [, tile] = (await pageTileRgb(pages[0], 3)) ?? [];
      // The placeholder is dark grey (0x30): neither p1's green nor the black of the letterbox bars.
      return c[0] === "red" && c[2] === "blue" && tile && tile.every((v) => v > 25 && v < 75);
    });
    await pages[1].click("#mute");
    await pages[1].click("#camera");
    await waitForPageTiles(pages[0], ids);
    await waitFor("p1's tone back", async () => (await pageToneLevels(pages[0], ids)).p1 > -60);
  });

  it("reconnects by itself after its WebSocket is dropped, and rejoins as the same name", async () => {
    const before = await pages[2].evaluate(() => (window as any).mixroom.participantId);
    expect(server.dropWebSocket(before)).toBe(true);
    await waitFor("p2 rejoined with a new id", async () => {
      const now = await pages[2].evaluate(() => (window as any).mixroom.participantId);
      return now && now !== before;
    }, 20_000);
    await waitFor("p0 lists p2 again", async () => (await participantNames(pages[0])).includes("p2"));
    await waitForPageTiles(pages[2], ids, 30_000);
    await waitForPageTiles(pages[0], ids, 30_000);
  });

  it("leave updates the others' participant lists and grid", async () => {
    await pages[2].click("#leave");
    for (const p of pages.slice(0, 2)) {
      await waitFor(`${p.id}'s list without p2`, async () => {
        const names = await participantNames(p);
        return names.length === 2 && !names.includes("p2");
      });
      await waitForPageTiles(p, ["p0", "p1"], 20_000);
    }
  });
});

describe("restrictive networks", () => {
  it("joins over HTTP long polling without opening a WebSocket", async () => {
    const p = await join("p3", "longpoll", "&transport=longpoll").catch((e) => {
      throw e;
    });
    let sockets = 0;
    p.page!.on("websocket", () => sockets++);
    try {
      await waitForPageTiles(p, ["p3"], 30_000);
      expect(await participantNames(p)).toEqual(["p3"]);
      expect(sockets).toBe(0);
      const usedWs = await p.evaluate(() => performance.getEntriesByType("resource").some((e) => e.name.startsWith("ws")));
      expect(usedWs).toBe(false);
      expect(await p.evaluate(() => (window as any).mixroom.transport.kind)).toBe("longpoll");
    } finally {
      await p.close();
    }
  });

  it("joins through coturn with iceTransportPolicy relay and credentials minted by the server", async () => {
    const p = await join("p4", "relay", "&ice=relay");
    try {
      await waitForPageTiles(p, ["p4"], 30_000);
      const localType = await p.evaluate(async () => {
        const stats = await ((window as any).mixroom.pc as RTCPeerConnection).getStats();
        let pair: any;
        stats.forEach((s: any) => {
          if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
        });
        return pair ? stats.get(pair.localCandidateId)?.candidateType : undefined;
      });
      expect(localType).toBe("relay");
      expect(turn.allocations()).toBeGreaterThan(0);
    } finally {
      await p.close();
    }
  });
});
