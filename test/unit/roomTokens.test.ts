import { createHmac } from "node:crypto";
import { SignJWT, decodeJwt, decodeProtectedHeader } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DEFAULT_RIGHTS, TokenError, TokenInputError, mintRoomToken, verifyRoomToken } from "../../server/roomTokens.ts";

const SECRET = "s".repeat(40);
const key = new TextEncoder().encode(SECRET);
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");

async function expectTokenError(p: Promise<unknown>, code: "unauthorized" | "forbidden", msg?: RegExp): Promise<TokenError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(TokenError);
  expect((err as TokenError).code).toBe(code);
  if (msg) expect((err as Error).message).toMatch(msg);
  return err as TokenError;
}

/** A token with our claims, signed however the test wants. */
function claims(over: Record<string, unknown> = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { room: "r1", name: "Ada", rights: ["publish"], sub: "u1", jti: "j1", iss: "mixroom", aud: "mixroom-join", iat: now, exp: now + 60, ...over };
}

afterEach(() => vi.useRealTimers());

describe("room tokens", () => {
  it("round trip: the grant comes back as minted, claims as documented", async () => {
    const { token, grant } = await mintRoomToken(SECRET, { room: "r1", name: "  Ada  ", identity: "ada@x", rights: ["publish", "record", "publish"], ttlS: 600 });
    expect(grant).toMatchObject({ room: "r1", name: "Ada", identity: "ada@x", rights: ["publish", "record"] });
    expect(grant.expiresAt).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000) + 599);
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: "HS256" });
    const c = decodeJwt(token);
    expect(c).toMatchObject({ sub: "ada@x", room: "r1", name: "Ada", rights: ["publish", "record"], jti: grant.tokenId, iss: "mixroom", aud: "mixroom-join", exp: grant.expiresAt });
    expect(c.exp! - c.iat!).toBe(600);
    expect(await verifyRoomToken(SECRET, token, "r1")).toEqual(grant);
  });

  it("defaults: random identity and jti, publish+subscribe", async () => {
    const a = await mintRoomToken(SECRET, { room: "r1", name: "Ada", ttlS: 60 });
    const b = await mintRoomToken(SECRET, { room: "r1", name: "Ada", ttlS: 60 });
    expect(a.grant.rights).toEqual(["publish", "subscribe"]);
    expect(a.grant.identity).not.toBe(b.grant.identity);
    expect(a.grant.tokenId).not.toBe(b.grant.tokenId);
  });

  it("a token without a rights claim gets the default rights", async () => {
    const { rights: _, ...rest } = claims();
    const token = await new SignJWT(rest).setProtectedHeader({ alg: "HS256" }).sign(key);
    expect((await verifyRoomToken(SECRET, token, "r1")).rights).toEqual([...DEFAULT_RIGHTS]);
  });

  it("expired tokens are refused, with the time (5 s tolerance)", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date("2030-01-01T00:00:00Z"));
    const { token } = await mintRoomToken(SECRET, { room: "r1", name: "Ada", ttlS: 10 });
    vi.setSystemTime(new Date("2030-01-01T00:00:14Z"));
    await verifyRoomToken(SECRET, token, "r1"); // within tolerance
    vi.setSystemTime(new Date("2030-01-01T00:00:16Z"));
    await expectTokenError(verifyRoomToken(SECRET, token, "r1"), "unauthorized", /token expired at 2030-01-01T00:00:10.000Z/);
  });

  it("another secret, a tampered payload, a missing or malformed token: unauthorized", async () => {
    const { token } = await mintRoomToken(SECRET, { room: "r1", name: "Ada", ttlS: 60 });
    await expectTokenError(verifyRoomToken("o".repeat(40), token, "r1"), "unauthorized", /signature/);
    const [h, , s] = token.split(".");
    const tampered = `${h}.${b64({ ...decodeJwt(token), rights: ["publish", "subscribe", "moderate"] })}.${s}`;
    await expectTokenError(verifyRoomToken(SECRET, tampered, "r1"), "unauthorized", /signature/);
    await expectTokenError(verifyRoomToken(SECRET, undefined, "r1"), "unauthorized", /needs a token/);
    await expectTokenError(verifyRoomToken(SECRET, "", "r1"), "unauthorized");
    await expectTokenError(verifyRoomToken(SECRET, "not.a.jwt", "r1"), "unauthorized", /malformed/);
    await expectTokenError(verifyRoomToken(SECRET, "garbage", "r1"), "unauthorized");
  });

  it("alg none and HS512 are refused even with the right secret", async () => {
    const none = `${b64({ alg: "none", typ: "JWT" })}.${b64(claims())}.`;
    await expectTokenError(verifyRoomToken(SECRET, none, "r1"), "unauthorized");
    const hs512 = await new SignJWT(claims()).setProtectedHeader({ alg: "HS512" }).sign(key);
    await expectTokenError(verifyRoomToken(SECRET, hs512, "r1"), "unauthorized", /HS256 only/);
    // Hand-made HS256 with the same claims passes: the refusals above are about alg, not the claims.
    const body = `${b64({ alg: "HS256" })}.${b64(claims())}`;
    const ok = `${body}.${createHmac("sha256", SECRET).update(body).digest("base64url")}`;
    expect((await verifyRoomToken(SECRET, ok, "r1")).identity).toBe("u1");
  });

  it("wrong issuer, audience, or no exp: unauthorized", async () => {
    for (const over of [{ iss: "other" }, { aud: "elsewhere" }, { exp: undefined }, { rights: ["fly"] }, { room: "bad room" }]) {
      const token = await new SignJWT(claims(over)).setProtectedHeader({ alg: "HS256" }).sign(key);
      await expectTokenError(verifyRoomToken(SECRET, token, "r1"), "unauthorized");
    }
  });

  it("a token for another room is forbidden", async () => {
    const { token } = await mintRoomToken(SECRET, { room: "r1", name: "Ada", ttlS: 60 });
    await expectTokenError(verifyRoomToken(SECRET, token, "r2"), "forbidden", /token is for room r1/);
  });

  it("oversized tokens are refused before parsing", async () => {
    const token = await new SignJWT(claims({ pad: "x".repeat(5000) })).setProtectedHeader({ alg: "HS256" }).sign(key);
    await expectTokenError(verifyRoomToken(SECRET, token, "r1"), "unauthorized", /over 4096 bytes/);
  });

  it("bad inputs to mint throw TokenInputError", async () => {
    const ok = { room: "r1", name: "Ada", ttlS: 60 };
    const bad: object[] = [
      { room: "" }, { room: "a b" }, { room: "x".repeat(65) }, { room: "ü" },
      { name: "" }, { name: "   " }, { name: "n".repeat(65) }, { name: 5 },
      { identity: "" }, { identity: "i".repeat(129) },
      { rights: ["publish", "fly"] }, { rights: "publish" },
      { ttlS: 9 }, { ttlS: 365 * 86_400 + 1 }, { ttlS: 1.5 }, { ttlS: NaN },
    ];
    for (const b of bad) {
      await expect(mintRoomToken(SECRET, { ...ok, ...b } as never), JSON.stringify(b)).rejects.toBeInstanceOf(TokenInputError);
    }
    await expect(mintRoomToken("short", ok)).rejects.toThrow(/32 characters/);
    await expect(mintRoomToken(SECRET, { ...ok, ttlS: 10, rights: [] })).resolves.toBeTruthy();
  });
});
