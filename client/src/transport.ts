// Signaling transports: WebSocket first, HTTP long polling where WebSocket is unavailable.
// Both carry the same JSON messages; everything above them uses one code path.
import type { ClientMessage, ServerMessage } from "../../server/protocol.ts";

export interface Transport {
  readonly kind: "websocket" | "longpoll";
  send(msg: ClientMessage): void;
  /** Closes without a "dropped" callback (a deliberate leave). */
  close(): void;
}

export interface TransportEvents {
  onMessage(msg: ServerMessage): void;
  /** The connection went away without close() being called. */
  onDrop(reason: string): void;
}

/** `node`: the origin of the node to talk to (a `redirect` named it); default this page's own. */
export function connectWebSocket(ev: TransportEvents, timeoutMs: number, node = location.origin): Promise<Transport> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${node.replace(/^http/, "ws")}/ws`);
    let open = false;
    let closing = false;
    const timer = setTimeout(() => {
      if (!open) {
        ws.close();
        reject(new Error("WebSocket did not connect in time"));
      }
    }, timeoutMs);
    ws.onopen = () => {
      open = true;
      clearTimeout(timer);
      resolve({
        kind: "websocket",
        send: (m) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(m)),
        close: () => {
          closing = true;
          ws.close();
        },
      });
    };
    ws.onmessage = (e) => ev.onMessage(JSON.parse(e.data));
    ws.onerror = () => !open && (clearTimeout(timer), reject(new Error("WebSocket failed")));
    ws.onclose = () => open && !closing && ev.onDrop("websocket closed");
  });
}

/** Long polling: POST /signal for a session, numbered POSTs to send, held GETs to receive. */
export async function connectLongPoll(ev: TransportEvents, node = location.origin): Promise<Transport> {
  const res = await fetch(`${node}/signal`, { method: "POST" });
  if (!res.ok) throw new Error(`long-poll session refused (${res.status})`);
  // A node behind a load balancer names itself: the session's requests go to it, not to the balancer.
  const { session, node: own } = await res.json();
  const base = `${own ?? node}/signal/${session}`;
  let closed = false;
  let seqOut = 0;
  let acked = 0;
  let sending = Promise.resolve();

  const drop = (reason: string) => {
    if (closed) return;
    closed = true;
    ev.onDrop(reason);
  };

  void (async () => {
    let failures = 0;
    while (!closed) {
      try {
        const r = await fetch(`${base}?after=${acked}`, { cache: "no-store" });
        if (r.status === 404) return drop("long-poll session expired");
        if (!r.ok) throw new Error(String(r.status));
        const { messages } = await r.json();
        failures = 0;
        for (const m of messages) {
          if (m.seq <= acked) continue; // already delivered
          acked = m.seq;
          if (!closed) ev.onMessage(m.message);
        }
      } catch {
        if (++failures >= 3) return drop("long-poll failed");
        await new Promise((r) => setTimeout(r, 500 * failures));
      }
    }
  })();

  return {
    kind: "longpoll",
    send(m) {
      const seq = ++seqOut;
      // Serialised so the server sees messages in order; retried once, the server drops duplicates.
      sending = sending.then(async () => {
        for (let attempt = 0; attempt < 2 && !closed; attempt++) {
          const r = await fetch(base, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ seq, message: m }) }).catch(() => undefined);
          if (r?.ok) return;
          if (r?.status === 404) return drop("long-poll session expired");
        }
      });
    },
    close() {
      closed = true;
      void fetch(base, { method: "DELETE" }).catch(() => {});
    },
  };
}
