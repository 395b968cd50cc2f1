// Behind a reverse proxy every client arrives from the proxy's address: with TRUSTED_PROXIES the
// per-address caps count the client the proxy names, and a client's own header is not believed.
import { afterAll, beforeAll, expect, it } from "vitest";
import WebSocket from "ws";
import type { RunningServer } from "../../server/main.ts";
import { parseProxies } from "../../server/admission.ts";
import { startTestServer } from "../support/call.ts";

let server: RunningServer;
beforeAll(async () => {
  server = await startTestServer({ trustedProxies: parseProxies(["127.0.0.1"]), maxConnectionsPerIp: 2 });
});
afterAll(async () => {
  await server?.close();
});

/** Opens a WebSocket from `from` carrying X-Forwarded-For `xff`: "open" or the refusal's status. */
function open(from: string, xff: string, keep: WebSocket[]): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(server.url.replace(/^http/, "ws") + "/ws", { localAddress: from, headers: { "x-forwarded-for": xff } });
    ws.on("open", () => (keep.push(ws), resolve("open")));
    ws.on("unexpected-response", (_req, res) => resolve(String(res.statusCode)));
    ws.on("error", () => resolve("error"));
  });
}

it("counts the clients a trusted proxy names, each on its own", async () => {
  const keep: WebSocket[] = [];
  // Five clients through the proxy (127.0.0.1): more than MAX_CONNECTIONS_PER_IP of the proxy's own address.
  const through = await Promise.all(["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4", "198.51.100.5"].map((c) => open("127.0.0.1", c, keep)));
  expect(through).toEqual(["open", "open", "open", "open", "open"]);
  // One client named three times: its third connection is over the cap.
  const same = [await open("127.0.0.1", "198.51.100.9", keep), await open("127.0.0.1", "198.51.100.9", keep), await open("127.0.0.1", "198.51.100.9", keep)];
  expect(same).toEqual(["open", "open", "429"]);
  // A client that is not a proxy (127.0.0.5) cannot pick an address: its header is ignored.
  const direct = [await open("127.0.0.5", "198.51.100.20", keep), await open("127.0.0.5", "198.51.100.21", keep), await open("127.0.0.5", "198.51.100.22", keep)];
  expect(direct).toEqual(["open", "open", "429"]);
  for (const ws of keep) ws.close();
});
