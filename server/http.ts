// The HTTP side: a thin koa app. Routes call into the domain; they do not hold it.
import { createHash, timingSafeEqual } from "node:crypto";
import Koa from "koa";
import { isLoopback, requestAddress } from "./admission.ts";
import { logger } from "../telemetry/log.ts";
import { metrics, metricsContentType, renderMetrics, renderMetricsWith } from "../telemetry/metrics.ts";
import type { ClientBundle } from "./clientBundle.ts";

const log = logger("http");

/** Without API_TOKEN: the operator's own machine, or anyone where PUBLIC_API=on says so. */
export function anonymousApiAllowed(address: string, publicApi: boolean): boolean {
  return publicApi || isLoopback(address);
}

/**
 * /api and /metrics are for operators. With API_TOKEN set they answer only requests that carry it;
 * without it, only requests from loopback (the operator's own machine) unless PUBLIC_API=on. The
 * page itself needs neither.
 */
export function apiAuth(token: string | undefined, publicApi = false, trusted: (address: string) => boolean = () => false): Koa.Middleware {
  const want = token ? createHash("sha256").update(token).digest() : undefined;
  return async (ctx, next) => {
    if (!ctx.path.startsWith("/api/") && ctx.path !== "/api" && ctx.path !== "/metrics") return next();
    if (!want) {
      if (anonymousApiAllowed(requestAddress(ctx.req, trusted), publicApi)) return next();
      ctx.status = 403;
      ctx.body = { error: "forbidden", message: "set API_TOKEN to use /api and /metrics from another machine (or PUBLIC_API=on)" };
      return;
    }
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

/**
 * `otherMetrics`: the media workers' metrics (prom-client JSON), summed with this process's in
 * /metrics; per-worker gauges carry a `worker` label.
 */
export function createHttpApp(client: ClientBundle, extra: Koa.Middleware[] = [], otherMetrics?: () => Promise<object[][]>): Koa {
  const app = new Koa();
  // koa's error policy: a client reads an error's message only when it was meant for it (`expose`,
  // as ctx.throw(4xx) sets); anything else is "internal error" to the client and logged with its
  // stack here. Every 5xx answer, thrown or set by a route (502, 507), is counted and logged.
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const e = err as Error & { status?: number; expose?: boolean };
      const status = e.status && e.status >= 400 && e.status < 600 ? e.status : 500;
      ctx.status = status;
      ctx.body = { error: status >= 500 ? "internal" : "bad_request", message: e.expose ? e.message : status >= 500 ? "internal error" : "bad request" };
      if (status >= 500) log.error("request failed", { method: ctx.method, path: ctx.path, status, error: e.message, stack: e.stack });
    }
    if (ctx.status >= 500) {
      metrics.httpErrors.inc({ status: String(ctx.status) });
      const code = (ctx.body as { error?: string } | undefined)?.error;
      if (code !== "internal") log.warn("answered with a server error", { method: ctx.method, path: ctx.path, status: ctx.status, error: code });
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
        ctx.type = metricsContentType;
        ctx.body = otherMetrics ? await renderMetricsWith(await otherMetrics()) : await renderMetrics();
        return;
      case "/":
      case "/index.html":
        ctx.type = "html";
        ctx.body = client.html;
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
