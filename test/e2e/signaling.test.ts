// Malformed signaling gets a clear `error` reply while a call in another room keeps going.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { RunningServer } from "../../server/main.ts";
import { metrics } from "../../telemetry/metrics.ts";
import { closeAll, joinAll, longestGap, startTestServer, waitFor, waitForTiles } from "../support/call.ts";
import type { SyntheticParticipant } from "../support/SyntheticParticipant.ts";

let server: RunningServer;
let call: SyntheticParticipant[];
beforeAll(async () => {
  server = await startTestServer();
  call = await joinAll(server, "live", ["p0", "p1"]);
  await waitForTiles(call[0], ["p0", "p1"]);
});
afterAll(async () => {
  await closeAll(call ?? []);
  await server?.close();
});

class RawClient {
  readonly ws: WebSocket;
  readonly inbox: any[] = [];
  closeCode: number | undefined;
  constructor(url: string) {
    this.ws = new WebSocket(url.replace(/^http/, "ws") + "/ws");
    this.ws.on("message", (d) => this.inbox.push(JSON.parse(d.toString())));
    this.ws.on("close", (code) => (this.closeCode = code));
    this.ws.on("error", () => {});
  }
  async open() {
    if (this.ws.readyState !== WebSocket.OPEN) await new Promise((r) => this.ws.once("open", r));
    return this;
  }
  /** Sends raw data and returns the next message the server answers with. */
  async ask(data: string | Buffer): Promise<any> {
    const n = this.inbox.length;
    this.ws.send(data);
    await waitFor("a reply", () => this.inbox.length > n, 5000);
    return this.inbox[n];
  }
}

describe("signaling input validation", () => {
  const cases: [string, string | Buffer, string][] = [
    ["non-JSON text", "hello {", "bad_json"],
    ["binary garbage", Buffer.from([0xff, 0x00, 0x13]), "bad_json"],
    ["a JSON array", "[1,2]", "invalid_message"],
    ["no type", JSON.stringify({ room: "x" }), "invalid_message"],
    ["an unknown type", JSON.stringify({ type: "dance" }), "unknown_type"],
    ["join without a room", JSON.stringify({ type: "join", name: "n" }), "invalid_message"],
    ["join with a bad room name", JSON.stringify({ type: "join", room: "../etc", name: "n" }), "invalid_message"],
    ["join with an empty name", JSON.stringify({ type: "join", room: "r", name: "  " }), "invalid_message"],
    ["offer without sdp", JSON.stringify({ type: "offer" }), "invalid_message"],
    ["offer before join", JSON.stringify({ type: "offer", sdp: "v=0" }), "not_joined"],
    ["candidate before join", JSON.stringify({ type: "candidate", candidate: null }), "not_joined"],
    ["leave before join", JSON.stringify({ type: "leave" }), "not_joined"],
    ["an oversized message", JSON.stringify({ type: "offer", sdp: "x".repeat(100 * 1024) }), "too_large"],
  ];

  for (const [what, data, code] of cases) {
    it(`answers ${what} with error ${code}`, async () => {
      const c = await new RawClient(server.url).open();
      const reply = await c.ask(data);
      expect(reply).toMatchObject({ type: "error", code });
      expect(typeof reply.message).toBe("string");
      expect(reply.message.length).toBeGreaterThan(5);
      // The connection survives a bad message: a valid join still works on it.
      expect(await c.ask(JSON.stringify({ type: "join", room: `ok-${code}`, name: "n" }))).toMatchObject({ type: "joined" });
      c.ws.close();
    });
  }

  it("answers a second join with already_joined, and a garbage offer with bad_offer", async () => {
    const c = await new RawClient(server.url).open();
    expect(await c.ask(JSON.stringify({ type: "join", room: "twice", name: "a" }))).toMatchObject({ type: "joined" });
    await waitFor("participants", () => c.inbox.some((m) => m.type === "participants"));
    expect(await c.ask(JSON.stringify({ type: "join", room: "twice", name: "a" }))).toMatchObject({ type: "error", code: "already_joined" });
    expect(await c.ask(JSON.stringify({ type: "offer", sdp: "v=0\r\nnot an sdp" }))).toMatchObject({ type: "error", code: "bad_offer" });
    c.ws.close();
    await waitFor("room twice emptied", () => !server.rooms.get("twice"), 5000);
  });

  it("closes a connection whose frame is far over the cap (1009) and keeps serving", async () => {
    const c = await new RawClient(server.url).open();
    c.ws.send("x".repeat(server.config.maxMessageBytes * 5));
    await waitFor("close", () => c.closeCode !== undefined, 5000);
    expect(c.closeCode).toBe(1009);
  });

  it("never lets a .local (mDNS) candidate hold up the next messages: media and leave act at once", async () => {
    const [p] = await joinAll(server, "mdns", ["p2"]);
    const skipped = metrics.iceCandidatesSkipped.get({ reason: "mdns" });
    // What Firefox and Chromium send to hide a host address; werift would wait 10 s to resolve it.
    for (const name of ["3f1d2c5e-9b7a-4c1e-8d2f-6a5b4c3d2e1f.local", "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d.local"]) {
      p.send({ type: "candidate", candidate: { candidate: `candidate:1 1 udp 2122262783 ${name} 54321 typ host`, sdpMid: "0", sdpMLineIndex: 0 } });
    }
    const t0 = performance.now();
    const since = p.messages.length;
    p.send({ type: "media", audio: false, video: true });
    await waitFor("the mute reflected in the list", () =>
      p.messages.slice(since).some((m) => m.type === "participants" && (m.participants as { audio: boolean }[])[0]?.audio === false), 5000);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(metrics.iceCandidatesSkipped.get({ reason: "mdns" })).toBe(skipped + 2);
    const t1 = performance.now();
    p.send({ type: "leave" });
    await waitFor("room mdns closed", () => !server.rooms.get("mdns"), 5000);
    expect(performance.now() - t1).toBeLessThan(1000);
    await p.close();
  });

  it("keeps candidates trickled before the offer and connects as fast as a client that waits", async () => {
    const early = metrics.iceCandidatesApplied.get({ when: "before_offer" });
    const timed = async (room: string, trickleBeforeOffer: boolean) => {
      const t0 = performance.now();
      const [p] = await joinAll(server, room, ["p3"], { trickleBeforeOffer });
      const ms = performance.now() - t0;
      await waitForTiles(p, ["p3"]);
      expect(p.errors).toEqual([]);
      await p.close();
      return ms;
    };
    const waits = [await timed("trickle-a", false), await timed("trickle-b", false)];
    const eager = [await timed("trickle-c", true), await timed("trickle-d", true)];
    // Its offer carried no candidates: the server had them only from the trickle before it.
    expect(metrics.iceCandidatesApplied.get({ when: "before_offer" })).toBeGreaterThanOrEqual(early + 2);
    expect(Math.min(...eager), JSON.stringify({ waits, eager })).toBeLessThan(Math.max(...waits) * 1.5 + 300);
  });

  it("takes at most MAX_REMOTE_CANDIDATES candidates from one participant", async () => {
    const [p] = await joinAll(server, "many-candidates", ["p4"]);
    const before = metrics.iceCandidatesSkipped.get({ reason: "too_many" });
    for (let i = 0; i < 40; i++) {
      p.send({ type: "candidate", candidate: { candidate: `candidate:${i} 1 udp 2122262783 192.0.2.${i + 1} 9 typ host`, sdpMid: "0", sdpMLineIndex: 0 } });
    }
    // werift's own candidates came with the offer (none trickled after it here): all 40 count.
    await waitFor("the excess counted", () => metrics.iceCandidatesSkipped.get({ reason: "too_many" }) >= before + 40 - server.config.maxRemoteCandidates, 5000);
    expect(p.errors).toEqual([]);
    await p.close();
  });

  it("kept the call in the other room flowing through all of that", async () => {
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 1000));
    for (const p of call) {
      expect(longestGap(p, t0)).toBeLessThan(200);
      await waitForTiles(p, ["p0", "p1"]);
    }
  });
});
