// The cap on bytes queued towards a WebSocket client that does not read, on real sockets.
import type { AddressInfo } from "node:net";
import { afterEach, expect, it } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import { sendBounded } from "../../server/signaling/websocket.ts";

let wss: WebSocketServer | undefined;
afterEach(() => wss?.close());

it("closes a client that stops reading once its queue passes the cap, and never queues past it", async () => {
  wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  await new Promise((r) => wss!.once("listening", r));
  const serverSide = new Promise<WebSocket>((r) => wss!.once("connection", r));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  await new Promise((r) => client.once("open", r));
  (client as unknown as { _socket: { pause(): void } })._socket.pause(); // never reads again
  const ws = await serverSide;
  const chunk = "x".repeat(100_000);
  const cap = 256 * 1024;
  let sent = 0;
  let maxQueued = 0;
  // Kernel buffers take the first megabytes; then ws's own queue grows until the cap closes it.
  while (sent < 2000 && sendBounded(ws, chunk, cap)) {
    sent++;
    maxQueued = Math.max(maxQueued, ws.bufferedAmount);
    if (sent % 20 === 0) await new Promise((r) => setImmediate(r));
  }
  expect(sent).toBeLessThan(2000); // it stopped: 200 MB were never queued
  expect(maxQueued).toBeLessThanOrEqual(cap);
  expect(ws.readyState).toBeGreaterThanOrEqual(WebSocket.CLOSING);
  expect(sendBounded(ws, "late", cap)).toBe(false);
  client.terminate();
});
