// A hostile anonymous long-poll client: each test is one way it could hold memory, hang a
// request or crash the handler, and the bounded answer it now gets instead.
import http from "node:http";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startServer, type RunningServer } from "../../server/main.ts";
import { metrics } from "../../telemetry/metrics.ts";

let server: RunningServer;
const open = new Set<string>();

beforeAll(async () => {
  server = await startServer({ port: 0, host: "127.0.0.1", logLevel: "warn", maxConnectionsPerIp: 4, longPollWindow: 8 });
});
afterEach(async () => {
  for (const id of open) await del(id);
});
afterAll(async () => {
  await server?.close();
});

async function session(): Promise<string> {
  const r = await fetch(`${server.url}/signal`, { method: "POST" });
  expect(r.status).toBe(201);
  const { session: id } = await r.json();
  open.add(id);
  return id;
}
async function del(id: string): Promise<number> {
  open.delete(id);
  return (await fetch(`${server.url}/signal/${id}`, { method: "DELETE" })).status;
}
async function post(id: string, body: unknown, raw = false): Promise<{ status: number; json: any }> {
  const r = await fetch(`${server.url}/signal/${id}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: raw ? (body as string) : JSON.stringify(body),
  });
  return { status: r.status, json: await r.json().catch(() => undefined) };
}
async function poll(id: string, after = 0): Promise<{ status: number; json: any; ms: number }> {
  const t0 = Date.now();
  const r = await fetch(`${server.url}/signal/${id}?after=${after}`);
  return { status: r.status, json: await r.json(), ms: Date.now() - t0 };
}
const refusals = (code: string) => metrics.signalingErrors.get({ code: `longpoll_${code}` });

/** A raw request whose body the test controls (fetch always sends its whole body). */
function rawPost(path: string, headers: http.OutgoingHttpHeaders) {
  const req = http.request({ host: "127.0.0.1", port: server.port, path, method: "POST", headers });
  req.on("error", () => {}); // the server may close while the test still writes
  const response = new Promise<{ status: number; json: any; headers: http.IncomingHttpHeaders }>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("no answer within 3 s")), 3000);
    req.on("response", (res) => {
      let text = "";
      res.on("data", (c) => (text += c));
      res.on("end", () => (clearTimeout(t), resolve({ status: res.statusCode!, json: JSON.parse(text), headers: res.headers })));
      res.on("error", () => {});
    });
  });
  return { req, response };
}

/** The heap after a full collection (gc exposed at run time when the process was started without it). */
function heapUsed(): number {
  v8.setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
  return process.memoryUsage().heapUsed;
}

describe("long-poll limits", () => {
  it("still joins a room and delivers joined + participants", async () => {
    const id = await session();
    expect((await post(id, { seq: 1, message: { type: "join", room: "lp-ok", name: "Ada" } })).json).toEqual({ acked: 1 });
    const seen: any[] = [];
    while (!seen.some((m) => m.message.type === "participants")) seen.push(...(await poll(id, seen.at(-1)?.seq ?? 0)).json.messages);
    expect(seen[0].message).toMatchObject({ type: "joined", room: "lp-ok" });
    expect(await del(id)).toBe(204);
  });

  it("holds at most the window of out-of-order seqs, refusing the rest with 409 and without keeping them", async () => {
    const id = await session();
    const pad = "x".repeat(30_000); // 2,000 of these kept would be ~60 MB of strings
    const before = heapUsed();
    const statuses = new Map<number, number>();
    const t0 = refusals("seq_out_of_window");
    for (let seq = 2; seq <= 2001; seq++) {
      const r = await post(id, { seq, message: { type: "candidate", candidate: { candidate: pad } } });
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      if (r.status === 409) expect(r.json.error).toBe("seq_out_of_window");
      else expect(r.json).toEqual({ acked: 0 });
    }
    expect(Object.fromEntries(statuses)).toEqual({ 202: 7, 409: 1993 }); // seqs 2..8 fit the window of 8
    expect(refusals("seq_out_of_window") - t0).toBe(1993);
    expect(heapUsed() - before).toBeLessThan(8 * 1024 * 1024);
    // A retry of a held seq is acknowledged, not stored again; seq 1 then releases all eight.
    expect(await post(id, { seq: 5, message: { type: "leave" } })).toEqual({ status: 202, json: { acked: 0 } });
    expect(await post(id, { seq: 1, message: { type: "leave" } })).toEqual({ status: 202, json: { acked: 8 } });
    expect(await post(id, { seq: 3, message: { type: "leave" } })).toEqual({ status: 202, json: { acked: 8 } });
  });

  it("refuses seqs that are not safe positive integers (400) and bodies that are not {seq, message}", async () => {
    const id = await session();
    for (const seq of [1e300, 0, -1, 1.5, "1", null, 2 ** 53]) {
      const r = await post(id, { seq, message: { type: "leave" } });
      expect([seq, r.status, r.json.error]).toEqual([seq, 400, "bad_seq"]);
    }
    for (const raw of ["null", "[]", '"x"', "{", ""]) {
      const r = await post(id, raw, true);
      expect([raw, r.status, r.json.error]).toEqual([raw, 400, "bad_json"]);
    }
  });

  it("refuses an oversized body by its Content-Length without reading it (413)", async () => {
    const id = await session();
    const { req, response } = rawPost(`/signal/${id}`, { "content-type": "application/json", "content-length": 100_000_000 });
    req.flushHeaders(); // headers only: not one byte of the body is ever sent
    const r = await response;
    req.destroy();
    expect(r.status).toBe(413);
    expect(r.json.error).toBe("too_large");
    expect(r.headers.connection).toBe("close");
  });

  it("stops reading a chunked body at the limit (413) while the client is still sending", async () => {
    const id = await session();
    const { req, response } = rawPost(`/signal/${id}`, { "content-type": "application/json", "transfer-encoding": "chunked" });
    req.write('{"seq":1,"message":"');
    const chunk = "x".repeat(16 * 1024);
    const writer = setInterval(() => req.write(chunk), 5); // never ends on its own
    try {
      const r = await response;
      expect(r.status).toBe(413);
      expect(r.json.error).toBe("too_large");
    } finally {
      clearInterval(writer);
      req.destroy();
    }
    // The session is unharmed: seq 1 was never taken.
    expect(await post(id, { seq: 1, message: { type: "leave" } })).toEqual({ status: 202, json: { acked: 1 } });
  });

  it("refuses a deeply nested message with 400 too_deep, not 500", async () => {
    const id = await session();
    const deep = "[".repeat(10_000) + "]".repeat(10_000);
    const r = await post(id, `{"seq":1,"message":${deep}}`, true);
    expect(r).toMatchObject({ status: 400, json: { error: "too_deep" } });
    // Nested inside a string it is only text here; the shared parser answers it as a bad message.
    expect((await post(id, { seq: 1, message: deep })).status).toBe(202);
    const { json } = await poll(id);
    expect(json.messages[0].message).toMatchObject({ type: "error", code: "invalid_message" });
  });

  it("answers the held GET at once when a newer one arrives; only the newest waits", async () => {
    const id = await session();
    const first = poll(id);
    await new Promise((r) => setTimeout(r, 200));
    const second = poll(id);
    const a = await first;
    expect(a.status).toBe(200);
    expect(a.json.messages).toEqual([]);
    expect(a.ms).toBeLessThan(1000);
    // The newer one is still held; closing the session releases it too.
    const raced = await Promise.race([second.then(() => "answered"), new Promise((r) => setTimeout(() => r("held"), 300))]);
    expect(raced).toBe("held");
    await del(id);
    expect((await second).ms).toBeLessThan(2000);
  });

  it("caps sessions per address (429) and frees a slot on DELETE", async () => {
    const ids = [await session(), await session(), await session(), await session()];
    const t0 = refusals("too_many_connections");
    const r = await fetch(`${server.url}/signal`, { method: "POST" });
    expect(r.status).toBe(429);
    expect((await r.json()).error).toBe("too_many_connections");
    expect(refusals("too_many_connections") - t0).toBe(1);
    expect(await del(ids[0])).toBe(204);
    await session();
  });

  it("shares the per-address cap with WebSockets", async () => {
    await Promise.all([session(), session(), session()]);
    const ws = new WebSocket(`${server.url.replace(/^http/, "ws")}/ws`);
    await new Promise((r, j) => (ws.once("open", r), ws.once("error", j)));
    expect((await fetch(`${server.url}/signal`, { method: "POST" })).status).toBe(429);
    ws.close();
    await new Promise((r) => ws.once("close", r));
    await new Promise((r) => setTimeout(r, 100)); // the server sees the close a moment later
    await session();
  });

  it("answers bad GET parameters, unknown sessions and other methods with JSON errors", async () => {
    const id = await session();
    expect((await fetch(`${server.url}/signal/${id}?after=-1`)).status).toBe(400);
    expect((await fetch(`${server.url}/signal/${id}?after=abc`)).status).toBe(400);
    expect((await fetch(`${server.url}/signal/${id}`, { method: "PUT" })).status).toBe(405);
    expect((await fetch(`${server.url}/signal`)).status).toBe(405);
    const gone = await fetch(`${server.url}/signal/00000000-0000-0000-0000-000000000000`);
    expect([gone.status, (await gone.json()).error]).toEqual([404, "unknown_session"]);
  });
});
