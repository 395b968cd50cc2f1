// REST for minting room tokens, under /api (so API_TOKEN guards it, as it does every /api route):
//   POST /api/rooms/:room/tokens  {name, identity?, rights?, ttlS?}  →  201 {token, expiresAt, grant}
import type Koa from "koa";
import type { Config } from "./config.ts";
import { readBody } from "./httpBody.ts";
import { TokenInputError, mintRoomToken } from "./roomTokens.ts";

const ROUTE = /^\/api\/rooms\/([^/]+)\/tokens$/;
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

export function tokensApi(config: Config): Koa.Middleware {
  return async (ctx, next) => {
    const m = ROUTE.exec(ctx.path);
    if (!m) return next();
    ctx.set("Cache-Control", "no-store");
    if (ctx.method !== "POST") {
      ctx.set("Allow", "POST");
      return fail(ctx, 405, "method_not_allowed", `${ctx.method} is not allowed here (allowed: POST)`);
    }
    // Before reading anything: without a secret no token could be checked, so none is minted.
    if (!config.authSecret) return fail(ctx, 409, "auth_disabled", "AUTH_SECRET is not set: rooms are open and need no token");
    const raw = await jsonText(ctx);
    if (raw === undefined) return;
    let body: unknown;
    try {
      body = JSON.parse(raw || "{}");
    } catch {
      return fail(ctx, 400, "bad_request", "body must be JSON");
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) return fail(ctx, 400, "bad_request", "body must be a JSON object");
    const { name, identity, rights, ttlS } = body as Record<string, unknown>;
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
