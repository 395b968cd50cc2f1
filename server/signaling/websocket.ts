// WebSocket signaling at /ws: one SignalingSession per socket. Bounded per client: connections per
// address (shared with long polling), messages per second (checked as they arrive, flooders
// closed), bytes queued towards a client that does not read, and liveness by pings it must echo.
import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import { KeyedQuota, requestAddress } from "../admission.ts";
import type { Config } from "../config.ts";
import { logger } from "../../telemetry/log.ts";
import { metrics } from "../../telemetry/metrics.ts";
import type { Session, SessionFactory } from "./session.ts";

const log = logger("websocket");

/**
 * Sends unless the client has fallen more than `cap` bytes behind (a client that does not read must
 * not make us hold its messages forever): then it is closed (1008) and false is returned.
 */
export function sendBounded(ws: WebSocket, text: string, cap: number): boolean {
  if (ws.readyState !== ws.OPEN) return false;
  if (ws.bufferedAmount + text.length > cap) {
    metrics.signalingErrors.inc({ code: "slow_reader" });
    ws.close(1008, "not reading: too much queued");
    ws.terminate();
    return false;
  }
  ws.send(text);
  return true;
}

export function attachWebSocketSignaling(newSession: SessionFactory, config: Config, connections = new KeyedQuota(() => config.maxConnectionsPerIp)) {
  // Frames up to 4x the message cap are read so the client gets a `too_large` reply; beyond that ws closes (1009).
  const wss = new WebSocketServer({ noServer: true, maxPayload: config.maxMessageBytes * 4 });
  const sessions = new Map<WebSocket, Session>();
  wss.on("connection", (ws: WebSocket, req: IncomingMessage) => {
    const address = requestAddress(req, config.trustedProxies);
    const session = newSession((m) => {
      if (!sendBounded(ws, JSON.stringify(m), config.maxBufferedBytes)) log.info("closed a WebSocket that does not read", { address });
    }, address, () => ws.close(1012, "service restart"));
    sessions.set(ws, session);
    // Messages are handled one at a time, in order (an offer's answer before later candidates);
    // the rate is checked as they arrive, so a flood never queues behind a slow one.
    let chain = Promise.resolve();
    ws.on("message", (data, isBinary) => {
      if (!session.admit()) {
        if (session.flooding) {
          log.info("closing a flooding WebSocket", { address });
          ws.close(1008, "too many messages");
          ws.terminate();
        }
        return;
      }
      const raw = isBinary ? Buffer.from(data as Buffer) : data.toString();
      chain = chain.then(() => session.receive(raw, true));
    });
    // Liveness: only a pong echoing our last ping's random payload counts (unsolicited pongs fake nothing).
    let nonce: Buffer | undefined;
    let alive = true;
    ws.on("pong", (data) => {
      if (nonce && data.equals(nonce)) alive = true;
    });
    const ping = setInterval(() => {
      // A peer that vanished without closing (power loss, network gone) misses a pong: drop it.
      if (!alive) return ws.terminate();
      alive = false;
      nonce = randomBytes(8);
      ws.ping(nonce);
    }, config.wsPingMs);
    ws.on("close", () => {
      clearInterval(ping);
      sessions.delete(ws);
      chain = chain.then(() => session.leave());
    });
    ws.on("error", (err) => {
      // ws closes the socket itself on protocol violations (e.g. over maxPayload: close code 1009).
      metrics.signalingErrors.inc({ code: "transport" });
      log.debug("websocket error", { error: err.message });
    });
  });
  return {
    handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
      const path = new URL(req.url ?? "/", "http://x").pathname;
      if (path !== "/ws") return false;
      const release = connections.take(requestAddress(req, config.trustedProxies));
      if (!release) {
        metrics.signalingErrors.inc({ code: "too_many_connections" });
        socket.end("HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\ntoo many connections from this address\n");
        return true;
      }
      socket.once("close", release); // also when the handshake fails and no WebSocket is made
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
      return true;
    },
    drop(participantId: string): boolean {
      let found = false;
      for (const [ws, session] of sessions) {
        if (session.participantId === participantId) {
          ws.terminate();
          found = true;
        }
      }
      return found;
    },
    /** Graceful shutdown, first step: every client is told (`shutdown`) so its page reconnects elsewhere. */
    notifyShutdown(reconnectAfterMs: number): void {
      for (const session of sessions.values()) session.notifyShutdown(reconnectAfterMs);
    },
    /** Closes every connection with 1001 ("going away"), then drops what has not closed. */
    close(): void {
      for (const c of wss.clients) {
        c.close(1001, "server shutting down");
        setTimeout(() => c.terminate(), 500).unref();
      }
      wss.close();
    },
  };
}
