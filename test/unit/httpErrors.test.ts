// The HTTP error policy on a real koa app over loopback: a message reaches the client only when it
// was meant for it (koa's `expose`), and every 5xx answer is counted.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createHttpApp } from "../../server/http.ts";
import { metrics } from "../../telemetry/metrics.ts";

let server: http.Server;
let base: string;
beforeAll(async () => {
  const app = createHttpApp({ html: Buffer.from(""), js: Buffer.from(""), gzip: Buffer.from(""), source: "bundled" }, [
    async (ctx, next) => {
      if (ctx.path === "/boom") throw new Error("secret detail: db password is hunter2");
      if (ctx.path === "/told") ctx.throw(422, "the name is too long");
      if (ctx.path === "/hidden4xx") throw Object.assign(new Error("internal reason"), { status: 409 });
      if (ctx.path === "/unavailable") {
        ctx.status = 503;
        ctx.body = { error: "draining", message: "try another node" };
        return;
      }
      return next();
    },
  ]);
  server = http.createServer(app.callback());
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((r) => server.close(r)));

const get = async (p: string) => {
  const r = await fetch(base + p);
  return { status: r.status, body: await r.json() };
};

it("hides what was not meant for the client, shows what was, and counts every 5xx", async () => {
  const before = (s: string) => metrics.httpErrors.get({ status: s });
  const [b500, b503] = [before("500"), before("503")];
  expect(await get("/boom")).toEqual({ status: 500, body: { error: "internal", message: "internal error" } });
  expect(await get("/told")).toEqual({ status: 422, body: { error: "bad_request", message: "the name is too long" } });
  expect(await get("/hidden4xx")).toEqual({ status: 409, body: { error: "bad_request", message: "bad request" } });
  expect((await get("/unavailable")).status).toBe(503);
  expect(metrics.httpErrors.get({ status: "500" }) - b500).toBe(1);
  expect(metrics.httpErrors.get({ status: "503" }) - b503).toBe(1);
});
