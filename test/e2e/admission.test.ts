// Admission before any authentication: a join costs no media until its offer, a seat without an
// offer expires, per-address and server-wide caps, SDP limits, names cleaned and unique, `media`
// idempotent, a client that does not read is closed, room tokens and their rights, moderation.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SignJWT } from "jose";
import WebSocket from "ws";
import { liveFfmpegProcesses } from "../../mixer/FfmpegProcess.ts";
import { startServer, type RunningServer } from "../../server/main.ts";
import { metrics } from "../../telemetry/metrics.ts";
import { mintRoomToken } from "../../server/roomTokens.ts";
import { closeAll, joinAll, startTestServer, waitFor } from "../support/call.ts";
import { RawClient } from "../support/rawClient.ts";

const join = (room: string, name: string, token?: string) => ({ type: "join", room, name, ...(token ? { token } : {}) });

describe("open server, default caps", () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("a join without an offer starts no ffmpeg child and no mixer", async () => {
    const before = liveFfmpegProcesses().length;
    const c = await new RawClient(server.url).open();
    expect(await c.ask(join("idle", "Ida"), ["joined"])).toMatchObject({ type: "joined" });
    await new Promise((r) => setTimeout(r, 500));
    expect(liveFfmpegProcesses().length).toBe(before);
    expect(server.rooms.get("idle")!.currentMixer).toBeUndefined();
    c.close();
  });

  it("cleans names of control, bidi and zero-width characters and makes them unique in the room", async () => {
    const a = await new RawClient(server.url).open();
    const b = await new RawClient(server.url).open();
    const c = await new RawClient(server.url).open();
    expect((await a.ask(join("names", "Ada"), ["joined"])).name).toBe("Ada");
    expect((await b.ask(join("names", "A\u200Bda\u202E"), ["joined"])).name).toBe("Ada (2)");
    expect((await c.ask(join("names", " ada "), ["joined"])).name).toBe("ada (3)");
    await expect((await new RawClient(server.url).open()).ask(join("names", "\u2066\u200B"))).resolves.toMatchObject({ code: "invalid_message" });
    for (const x of [a, b, c]) x.close();
  });

  it("refuses offers with too many m= sections or lines before werift sees them", async () => {
    const c = await new RawClient(server.url).open();
    await c.ask(join("sdp", "s"), ["joined"]);
    const head = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-ufrag:x\r\na=fingerprint:sha-256 AA\r\n";
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) {
      const r = await c.ask({ type: "offer", sdp: head + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n".repeat(1000) }, ["error"]);
      expect(r).toMatchObject({ code: "bad_offer" });
      expect(r.message).toMatch(/m= sections/);
    }
    expect(performance.now() - t0).toBeLessThan(2000); // 20 such offers took ~30 s of blocked event loop before
    c.close();
  });

  it("repeats of the same `media` state send nobody a new participant list", async () => {
    const [p] = await joinAll(server, "idem", ["p0"]);
    try {
      p.send({ type: "media", audio: true, video: true }); // the state it already has
      const lists = () => p.messages.filter((m) => m.type === "participants").length;
      await new Promise((r) => setTimeout(r, 400));
      const n = lists();
      for (let i = 0; i < 10; i++) p.send({ type: "media", audio: true, video: true });
      await new Promise((r) => setTimeout(r, 600));
      expect(lists()).toBe(n);
    } finally {
      await closeAll([p]);
    }
  });
});

describe("participant lists", () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("go out at most five times a second however fast someone toggles, ending on the true state", async () => {
    const [a, b] = await joinAll(server, "lists", ["p0", "p1"]);
    try {
      await new Promise((r) => setTimeout(r, 500));
      const since = b.messages.length;
      for (let i = 0; i < 20; i++) {
        a.send({ type: "media", audio: i % 2 === 0, video: true });
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 500));
      const lists = b.messages.slice(since).filter((m) => m.type === "participants");
      // 20 changes over ~1 s: at most ~6 lists (one at once, then one per 200 ms), not 20.
      expect(lists.length).toBeGreaterThanOrEqual(2);
      expect(lists.length).toBeLessThanOrEqual(7);
      const last = (lists.at(-1)!.participants as { id: string; audio: boolean }[]).find((p) => p.id === a.participantId);
      expect(last?.audio).toBe(false); // the 20th message (i = 19) muted
    } finally {
      await closeAll([a, b]);
    }
  });
});

describe("tight caps", () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({
      port: 0, host: "127.0.0.1", logLevel: "warn",
      maxJoinsPerIp: 3, maxRoomsPerIp: 2, maxRooms: 4, maxConnectionsPerIp: 5, joinOfferTimeoutMs: 1000, maxBufferedBytes: 64 * 1024, wsPingMs: 300,
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("caps rooms and joins per address, while another address still gets in", async () => {
    const me = "127.0.0.2";
    const cs = await Promise.all([0, 1, 2, 3].map(() => new RawClient(server.url, me).open()));
    expect(await cs[0]!.ask(join("r1", "a"), ["joined", "error"])).toMatchObject({ type: "joined" });
    expect(await cs[1]!.ask(join("r2", "b"), ["joined", "error"])).toMatchObject({ type: "joined" });
    expect(await cs[2]!.ask(join("r3", "c"), ["joined", "error"])).toMatchObject({ code: "too_many_joins" }); // a third room
    expect(await cs[2]!.ask(join("r1", "c"), ["joined", "error"])).toMatchObject({ type: "joined" });
    expect(await cs[3]!.ask(join("r1", "d"), ["joined", "error"])).toMatchObject({ code: "too_many_joins" }); // a fourth seat
    const other = await new RawClient(server.url, "127.0.0.3").open();
    expect(await other.ask(join("r1", "e"), ["joined", "error"])).toMatchObject({ type: "joined" });
    // A fifth connection is the limit; the sixth gets HTTP 429 before any WebSocket.
    await new RawClient(server.url, me).open();
    await expect(new RawClient(server.url, me).open()).rejects.toThrow(/429/);
    for (const c of [...cs, other]) c.close();
  });

  it("frees a seat that never offers, and says why", async () => {
    const c = await new RawClient(server.url, "127.0.0.4").open();
    await c.ask(join("ghost", "g"), ["joined"]);
    const r = await waitFor("offer_timeout", () => c.inbox.find((m) => m.code === "offer_timeout"), 3000);
    expect(r.message).toMatch(/no offer/);
    // (This server runs its rooms in media workers: asked over the API, as an operator would.)
    await waitFor("room ghost gone", async () => !((await (await fetch(`${server.url}/api/rooms`)).json()) as { id: string }[]).some((r) => r.id === "ghost"), 2000);
    c.close();
  });

  it("drops a WebSocket that sends pongs of its own but never echoes our pings; keeps one that does", async () => {
    const faker = new WebSocket(server.url.replace(/^http/, "ws") + "/ws", { localAddress: "127.0.0.6", autoPong: false });
    const honest = new WebSocket(server.url.replace(/^http/, "ws") + "/ws", { localAddress: "127.0.0.7" });
    let fakerClosed = false;
    faker.on("close", () => (fakerClosed = true));
    faker.on("error", () => {});
    await Promise.all([faker, honest].map((w) => new Promise((r) => w.once("open", r))));
    const pongs = setInterval(() => faker.readyState === WebSocket.OPEN && faker.pong(), 50); // "I'm alive", unasked
    try {
      await waitFor("the faker dropped", () => fakerClosed, 3000); // pings every 300 ms: dropped at the second
      expect(honest.readyState).toBe(WebSocket.OPEN);
    } finally {
      clearInterval(pongs);
      honest.close();
    }
  });

  it("closes a WebSocket that keeps sending far over the rate, answering only one rate_limited a second", async () => {
    const before = metrics.signalingErrors.get({ code: "rate_limited" });
    const c = await new RawClient(server.url, "127.0.0.5").open();
    const junk = JSON.stringify({ type: "x".repeat(30) });
    for (let i = 0; i < 2000 && c.ws.readyState === WebSocket.OPEN; i++) c.ws.send(junk);
    await waitFor("flooder closed", () => c.closeCode !== undefined, 5000);
    expect(c.closeCode).toBe(1008);
    expect(metrics.signalingErrors.get({ code: "rate_limited" }) - before).toBeGreaterThan(100);
    expect(c.inbox.filter((m) => m.code === "rate_limited").length).toBe(1);
  });
});

describe("room tokens (AUTH_SECRET set)", () => {
  const secret = "s".repeat(40);
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer({ authSecret: secret });
  });
  afterAll(async () => {
    await server?.close();
  });
  const token = async (room: string, rights?: ("publish" | "subscribe" | "record" | "moderate")[], ttlS = 60) =>
    (await mintRoomToken(secret, { room, name: "Tok", rights, ttlS })).token;

  it("refuses a join without a token, with a forged or expired one, or one for another room", async () => {
    const c = await new RawClient(server.url).open();
    expect(await c.ask(join("t", "n"), ["error"])).toMatchObject({ code: "unauthorized" });
    expect(await c.ask(join("t", "n", "not.a.jwt"), ["error"])).toMatchObject({ code: "unauthorized" });
    expect(await c.ask(join("t", "n", await token("elsewhere")), ["error"])).toMatchObject({ code: "forbidden" });
    const forged = (await mintRoomToken("x".repeat(40), { room: "t", name: "F", ttlS: 60 })).token;
    expect(await c.ask(join("t", "n", forged), ["error"])).toMatchObject({ code: "unauthorized" });
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ room: "t", name: "Old", rights: ["publish"] })
      .setProtectedHeader({ alg: "HS256" }).setIssuer("mixroom").setAudience("mixroom-join").setSubject("old").setJti("j1")
      .setIssuedAt(now - 600).setExpirationTime(now - 60).sign(new TextEncoder().encode(secret));
    const r = await c.ask(join("t", "n", expired), ["error"]);
    expect(r).toMatchObject({ code: "unauthorized" });
    expect(r.message).toMatch(/expired/);
    const ok = await c.ask(join("t", "ignored", await token("t")), ["joined"]);
    expect(ok).toMatchObject({ name: "Tok", rights: ["publish", "subscribe"], canRecord: false });
    c.close();
  });

  it("holds a token to its rights: without publish only recvonly offers, without record no recording", async () => {
    const c = await new RawClient(server.url).open();
    await c.ask(join("rights", "n", await token("rights", ["subscribe"])), ["joined"]);
    expect(await c.ask({ type: "record", on: true }, ["error"])).toMatchObject({ code: "forbidden" });
    const sendrecv = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-ufrag:x\r\na=fingerprint:sha-256 AA\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\na=mid:0\r\n";
    const r = await c.ask({ type: "offer", sdp: sendrecv }, ["error"]);
    expect(r).toMatchObject({ code: "forbidden" });
    expect(r.message).toMatch(/may not send/);
    expect(await c.ask({ type: "moderate", action: "end" }, ["error"])).toMatchObject({ code: "forbidden" });
    c.close();
  });

  it("moderation: a moderator mutes someone in the mix, kicks them (their token cannot rejoin), and ends the room", async () => {
    const modToken = await token("mod", ["subscribe", "moderate"]);
    const mod = await new RawClient(server.url).open();
    await mod.ask(join("mod", "M", modToken), ["joined"]);
    const victimToken = (await mintRoomToken(secret, { room: "mod", name: "Vic", ttlS: 60 })).token;
    const [vic] = await joinAll(server, "mod", ["p0"], { token: victimToken });
    try {
      await mod.ask({ type: "moderate", action: "mute", participant: vic.participantId, audio: true }, ["participants"]);
      const told = await vic.next("moderated", 3000, 0);
      expect(told).toMatchObject({ audio: true, video: false });
      await waitFor("listed as muted by the moderator", () => {
        const me = (vic.participants as unknown as { id: string; audio: boolean; moderated: boolean }[]).find((x) => x.id === vic.participantId);
        return me && me.moderated && !me.audio;
      }, 3000);
      // Unknown targets are refused with a clear code.
      expect(await mod.ask({ type: "moderate", action: "kick", participant: "nobody" }, ["error"])).toMatchObject({ code: "unknown_participant" });
      mod.ws.send(JSON.stringify({ type: "moderate", action: "kick", participant: vic.participantId, reason: "spam" }));
      expect(await vic.next("kicked", 3000, 0)).toMatchObject({ reason: "spam" });
      await waitFor("vic gone", () => server.rooms.get("mod")?.size === 1, 3000);
      const again = await new RawClient(server.url).open();
      const r = await again.ask(join("mod", "Vic", victimToken), ["joined", "error"]);
      expect(r).toMatchObject({ code: "forbidden" });
      again.close();
      mod.ws.send(JSON.stringify({ type: "moderate", action: "end", reason: "meeting over" }));
      await waitFor("room_ended", () => mod.inbox.find((m) => m.type === "room_ended" && m.reason === "meeting over"), 3000);
      await waitFor("room gone", () => !server.rooms.get("mod"), 3000);
    } finally {
      mod.close();
      await closeAll([vic]);
    }
  });
});
