// REST for minting room tokens, under /api (so API_TOKEN guards it, as it does every /api route):
//   POST /api/rooms/:room/tokens  {name, identity?, rights?, ttlS?}  →  201 {token, expiresAt, grant}
//   POST /api/tokens/:tokenId/revoke  {expiresAt?}  →  200 {tokenId, revokedUntil, removed}
//     (tokenId is the mint's grant.tokenId, the token's jti; expiresAt its grant.expiresAt, unix
//     seconds, so the revocation is forgotten when the token would have expired: default now +
//     the longest token life, 365 days)
import type Koa from "koa";
import type { Config } from "./config.ts";
import { readBody } from "./httpBody.ts";
import { MAX_TTL_S, TokenInputError, mintRoomToken } from "./roomTokens.ts";
import { RevocationError, type Revocations } from "./revocations.ts";

const ROUTE = /^\/api\/rooms\/([^/]+)\/tokens$/;
const REVOKE = /^\/api\/tokens\/([^/]+)\/revoke$/;
const TOKEN_ID = /^[A-Za-z0-9._~-]{1,128}$/;
const MAX_BODY_BYTES = 16 * 1024;

function fail(ctx: Koa.Context, status: number, error: string, message: string): void {
  ctx.status = status;
  ctx.body = { error, message };
}

/** The body, or undefined once a 413 (or nothing, for an aborted request) has been answered. */
async function jsonText(ctx: Koa.Context): Promise<string | undefined> {
  if (Number(ctx.get("Content-Length")) > MAX_BODY_BYTES) return void fail(ctx, 413, "too_large", `body over ${MAX_BODY_BYTES} bytes`);
  const raw = await readBody(ctx.req, MAX_BODY_BYTES);
  if (raw === "too_large") {
    ctx.set("Connection", "close");
    return void fail(ctx, 413, "too_large", `body over ${MAX_BODY_BYTES} bytes`);
  }
  return raw === "aborted" ? undefined : raw;
}

/** The JSON object body, or undefined once an error was answered. */
async function jsonObject(ctx: Koa.Context): Promise<Record<string, unknown> | undefined> {
  const raw = await jsonText(ctx);
  if (raw === undefined) return;
  let body: unknown;
  try {
    body = JSON.parse(raw || "{}");
  } catch {
    return void fail(ctx, 400, "bad_request", "body must be JSON");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) return void fail(ctx, 400, "bad_request", "body must be a JSON object");
  return body as Record<string, unknown>;
}

async function revoke(ctx: Koa.Context, config: Config, revocations: Revocations, rawId: string): Promise<void> {
  ctx.set("Cache-Control", "no-store");
  if (ctx.method !== "POST") {
    ctx.set("Allow", "POST");
    return fail(ctx, 405, "method_not_allowed", `${ctx.method} is not allowed here (allowed: POST)`);
  }
  if (!config.authSecret) return fail(ctx, 409, "auth_disabled", "AUTH_SECRET is not set: rooms are open and take no tokens");
  let tokenId: string;
  try {
    tokenId = decodeURIComponent(rawId);
  } catch {
    return fail(ctx, 400, "bad_request", "token id is not a valid URL segment");
  }
  if (!TOKEN_ID.test(tokenId)) return fail(ctx, 400, "bad_request", "token id must be 1-128 URL-safe characters (the grant's tokenId)");
  const body = await jsonObject(ctx);
  if (!body) return;
  const now = Math.floor(Date.now() / 1000);
  const until = body.expiresAt ?? now + MAX_TTL_S;
  if (typeof until !== "number" || !Number.isInteger(until) || until > now + MAX_TTL_S) {
    return fail(ctx, 400, "bad_request", `expiresAt must be the token's expiry in whole unix seconds, at most ${MAX_TTL_S} s from now`);
  }
  try {
    const removed = until > now ? await revocations.revoke(tokenId, until) : 0; // an expired token needs no revoking
    ctx.body = { tokenId, revokedUntil: Math.max(until, now), removed };
  } catch (err) {
    if (err instanceof RevocationError) return fail(ctx, 503, "too_many_revocations", err.message);
    return fail(ctx, 503, "cluster_unavailable", `the revocation could not be shared with the other nodes: ${(err as Error).message}`);
  }
}

export function tokensApi(config: Config, revocations: Revocations): Koa.Middleware {
  return async (ctx, next) => {
    const r = REVOKE.exec(ctx.path);
    if (r) return revoke(ctx, config, revocations, r[1]!);
    const m = ROUTE.exec(ctx.path);
    if (!m) return next();
    ctx.set("Cache-Control", "no-store");
    if (ctx.method !== "POST") {
      ctx.set("Allow", "POST");
      return fail(ctx, 405, "method_not_allowed", `${ctx.method} is not allowed here (allowed: POST)`);
    }
    // Before reading anything: without a secret no token could be checked, so none is minted.
    if (!config.authSecret) return fail(ctx, 409, "auth_disabled", "AUTH_SECRET is not set: rooms are open and need no token");
    const body = await jsonObject(ctx);
    if (!body) return;
    const { name, identity, rights, ttlS } = body;
    let room: string;
    try {
      room = decodeURIComponent(m[1]!);
    } catch {
      return fail(ctx, 400, "bad_request", "room is not a valid URL segment");
    }
    try {
      // Shapes are checked by mintRoomToken (room, name, rights, ttl ranges); only null means "default" here.
      const { token, grant } = await mintRoomToken(config.authSecret, {
        room,
        name: name as string,
        identity: (identity ?? undefined) as string | undefined,
        rights: (rights ?? undefined) as never,
        ttlS: (ttlS ?? config.tokenTtlS) as number,
      });
      ctx.status = 201;
      ctx.body = { token, expiresAt: grant.expiresAt, grant };
    } catch (err) {
      if (err instanceof TokenInputError) return fail(ctx, 400, "bad_request", err.message);
      throw err;
    }
  };
}
