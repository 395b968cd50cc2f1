// POST /api/rooms/:room/tokens on a real server: behind API_TOKEN, minting tokens that verify;
// POST /api/tokens/:tokenId/revoke: a revoked token's holder is removed and it joins nowhere again.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../../server/main.ts";
import { verifyRoomToken } from "../../server/roomTokens.ts";
import { generateFixtures } from "../../fixtures/generate.ts";
import { metrics } from "../../telemetry/metrics.ts";
import { closeAll, joinAll, waitFor, waitForTiles } from "../support/call.ts";
import type { SyntheticParticipant } from "../support/SyntheticParticipant.ts";

const SECRET = "x".repeat(40);
const AUTH = { Authorization: "Bearer t0ken" };

function post(s: RunningServer, room: string, body: unknown, headers: Record<string, string> = AUTH) {
  return fetch(`${s.url}/api/rooms/${room}/tokens`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

describe("token REST API", () => {
  let server: RunningServer;
  let open: RunningServer;
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "mixroom-tokens-"));
    server = await startServer({ port: 0, host: "127.0.0.1", logLevel: "warn", authSecret: SECRET, apiToken: "t0ken", recordingsDir: dir });
    open = await startServer({ port: 0, host: "127.0.0.1", logLevel: "warn", authSecret: undefined, apiToken: undefined, recordingsDir: dir });
  });
  afterAll(async () => {
    await server?.close();
    await open?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it("401 without the API token", async () => {
    const r = await post(server, "r1", { name: "Ada" }, {});
    expect(r.status).toBe(401);
    expect((await r.json()).error).toBe("unauthorized");
    expect((await post(server, "r1", { name: "Ada" }, { Authorization: "Bearer nope" })).status).toBe(401);
  });

  it("201 with it: a token that verifies for that room", async () => {
    const r = await post(server, "r1", { name: " Ada ", identity: "ada", rights: ["subscribe", "record"], ttlS: 300 });
    expect(r.status).toBe(201);
    expect(r.headers.get("cache-control")).toBe("no-store");
    const body = await r.json();
    const grant = await verifyRoomToken(SECRET, body.token, "r1");
    expect(grant).toEqual(body.grant);
    expect(grant).toMatchObject({ room: "r1", name: "Ada", identity: "ada", rights: ["subscribe", "record"] });
    expect(body.expiresAt).toBe(grant.expiresAt);
    expect(grant.expiresAt - Math.floor(Date.now() / 1000)).toBeGreaterThan(290);
  });

  it("defaults: publish+subscribe, TOKEN_TTL_S", async () => {
    const r = await post(server, "r1", { name: "Bo" });
    expect(r.status).toBe(201);
    const { grant } = await r.json();
    expect(grant.rights).toEqual(["publish", "subscribe"]);
    expect(grant.expiresAt - Math.floor(Date.now() / 1000)).toBeGreaterThan(server.config.tokenTtlS - 10);
  });

  it("400 for a bad room, name, rights, ttl or body", async () => {
    const bad: [string, unknown][] = [
      ["a%20b", { name: "Ada" }],
      ["x".repeat(65), { name: "Ada" }],
      ["r1", {}],
      ["r1", { name: "" }],
      ["r1", { name: "n".repeat(65) }],
      ["r1", { name: "Ada", rights: ["publish", "fly"] }],
      ["r1", { name: "Ada", rights: "publish" }],
      ["r1", { name: "Ada", ttlS: 1 }],
      ["r1", { name: "Ada", ttlS: "60" }],
      ["r1", { name: "Ada", identity: 7 }],
      ["r1", "{not json"],
      ["r1", "[1]"],
    ];
    for (const [room, body] of bad) {
      const r = await post(server, room, body);
      expect(r.status, `${room} ${JSON.stringify(body)}`).toBe(400);
      const j = await r.json();
      expect(j.error).toBe("bad_request");
      expect(typeof j.message).toBe("string");
    }
  });

  it("413 for a body over 16 KB, 405 for other methods", async () => {
    const r = await post(server, "r1", { name: "Ada", pad: "p".repeat(20_000) });
    expect(r.status).toBe(413);
    expect((await r.json()).error).toBe("too_large");
    const g = await fetch(`${server.url}/api/rooms/r1/tokens`, { headers: AUTH });
    expect(g.status).toBe(405);
    expect(g.headers.get("allow")).toBe("POST");
  });

  it("409 when AUTH_SECRET is not set", async () => {
    const r = await post(open, "r1", { name: "Ada" }, {});
    expect(r.status).toBe(409);
    expect((await r.json()).error).toBe("auth_disabled");
  });
});

describe("token revocation", () => {
  let server: RunningServer;
  let dir: string;
  const joined: SyntheticParticipant[] = [];
  beforeAll(async () => {
    await generateFixtures();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "mixroom-revoke-"));
    server = await startServer({ port: 0, host: "127.0.0.1", logLevel: "warn", authSecret: SECRET, apiToken: "t0ken", recordingsDir: dir });
  });
  afterAll(async () => {
    await closeAll(joined);
    await server?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });
  const revoke = (id: string, body: unknown = {}, headers: Record<string, string> = AUTH) =>
    fetch(`${server.url}/api/tokens/${id}/revoke`, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(body) });
  const mint = async (name: string) => (await (await post(server, "rv", { name })).json()) as { token: string; expiresAt: number; grant: { tokenId: string } };
  const join = async (name: string, token: string) => {
    const [p] = await joinAll(server, "rv", [name], { token });
    joined.push(p!);
    return p!;
  };

  it("removes a revoked token's holder at once, and lets it join nowhere again; other tokens are untouched", async () => {
    const [ada, bo] = [await mint("p0"), await mint("p1")];
    const p0 = await join("p0", ada.token);
    const p1 = await join("p1", bo.token);
    await waitForTiles(p1, ["p0", "p1"]);
    const r = await revoke(ada.grant.tokenId, { expiresAt: ada.expiresAt });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ tokenId: ada.grant.tokenId, revokedUntil: ada.expiresAt, removed: 1 });
    await waitFor("p0 told it was removed", () => p0.messages.find((m) => m.type === "kicked"), 5000);
    await waitForTiles(p1, ["p1"]); // the room goes on without it
    await expect(join("p0", ada.token)).rejects.toThrow(/forbidden: this room token was revoked/);
    const p2 = await join("p2", (await mint("p2")).token);
    await waitForTiles(p2, ["p1", "p2"]);
    expect(metrics.tokensRevoked.get()).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it("is behind API_TOKEN and says what is wrong with a request", async () => {
    expect((await revoke("abc", {}, {})).status).toBe(401);
    expect((await revoke("not%20ok")).status).toBe(400);
    expect((await revoke("abc", { expiresAt: "soon" })).status).toBe(400);
    expect((await revoke("abc", { expiresAt: Math.floor(Date.now() / 1000) + 400 * 86_400 })).status).toBe(400);
    const old = await revoke("abc", { expiresAt: 1000 }); // already expired: nothing to revoke
    expect(old.status).toBe(200);
    expect((await old.json()).removed).toBe(0);
    expect((await fetch(`${server.url}/api/tokens/abc/revoke`, { headers: AUTH })).status).toBe(405);
  });
});
