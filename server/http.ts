// The HTTP side: a thin koa app. Routes call into the domain; they do not hold it.
import { createHash, timingSafeEqual } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Koa from "koa";
import { renderMetrics } from "./metrics.ts";
import type { ClientBundle } from "./clientBundle.ts";
import type { Rooms } from "./Rooms.ts";

const clientDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "client");

/** With a token configured, /api/* answers only requests that carry it (the page itself needs none). */
export function apiAuth(token: string | undefined): Koa.Middleware {
  const want = token ? createHash("sha256").update(token).digest() : undefined;
  return async (ctx, next) => {
    if (!want || !ctx.path.startsWith("/api/")) return next();
    const got = /^Bearer (.+)$/.exec(ctx.get("Authorization"))?.[1];
    if (!got || !timingSafeEqual(createHash("sha256").update(got).digest(), want)) {
      ctx.status = 401;
      ctx.set("WWW-Authenticate", 'Bearer realm="mixroom"');
      ctx.body = { error: "unauthorized", message: "this API needs Authorization: Bearer <API_TOKEN>" };
      return;
    }
    return next();
  };
}

export function createHttpApp(rooms: Rooms, client: ClientBundle, extra: Koa.Middleware[] = []): Koa {
  const app = new Koa();
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const e = err as Error & { status?: number; expose?: boolean };
      ctx.status = e.status ?? 500;
      ctx.body = { error: ctx.status >= 500 ? "internal" : "bad_request", message: e.expose === false ? "internal error" : e.message };
    }
  });
  for (const m of extra) app.use(m);
  app.use(async (ctx, next) => {
    if (ctx.method !== "GET") return next();
    switch (ctx.path) {
      case "/favicon.ico":
        ctx.status = 204;
        return;
      case "/healthz":
        ctx.body = { ok: true };
        return;
      case "/metrics":
        ctx.type = "text/plain; version=0.0.4";
        ctx.body = renderMetrics();
        return;
      case "/api/rooms":
        ctx.body = rooms.all().map((r) => ({ id: r.id, participants: r.list(), layout: r.currentMixer?.layout() ?? [], recording: r.state().recording }));
        return;
      case "/":
      case "/index.html":
        ctx.type = "html";
        ctx.body = await fs.readFile(path.join(clientDir, "index.html"));
        return;
      case "/client.js":
        ctx.type = "application/javascript";
        ctx.set("Vary", "Accept-Encoding");
        if (ctx.acceptsEncodings("gzip", "identity") === "gzip") {
          ctx.set("Content-Encoding", "gzip");
          ctx.body = client.gzip;
        } else {
          ctx.body = client.js;
        }
        return;
    }
    return next();
  });
  return app;
}
