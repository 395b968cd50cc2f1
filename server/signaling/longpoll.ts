// Signaling over HTTP long polling, for networks where WebSocket is blocked: the same
// SignalingSession as /ws, with numbered messages both ways so nothing is lost or duplicated.
//   POST   /signal                  → 201 {"session": id}
//   POST   /signal/:id  {"seq":n,"message":{…}}  → 202 {"acked": n}  (client seq starts at 1)
//   GET    /signal/:id?after=n      → 200 {"messages":[{"seq":m,"message":{…}}]}, held up to 20 s
//   DELETE /signal/:id              → 204 (leave)
// Anyone may open a session, so every store is bounded: sessions per address (shared quota with
// /ws), bytes per body (checked before and while reading), seqs held ahead (LONGPOLL_WINDOW),
// JSON nesting (JSON.stringify recurses), one held GET per session.
import { randomUUID } from "node:crypto";
import type Koa from "koa";
import { readBody } from "../httpBody.ts";
import { requestAddress, type KeyedQuota } from "../admission.ts";
import type { Config } from "../config.ts";
import { logger } from "../../telemetry/log.ts";
import { metrics } from "../../telemetry/metrics.ts";
import type { ServerMessage } from "../protocol.ts";
import type { Session, SessionFactory } from "./session.ts";

const log = logger("longpoll");
const HOLD_MS = 20_000;
const IDLE_MS = 30_000;
const MAX_QUEUED = 1000;
/** A session we end ourselves stays this long, so its held GET delivers what was queued for it. */
const HANG_UP_AFTER_MS = 1000;
/** Bytes a POST body may add around its message ({"seq":…,"message":…}). */
const ENVELOPE_BYTES = 1024;
export const MAX_JSON_DEPTH = 32;

/**
 * True when `text` nests arrays/objects deeper than `max` (brackets inside strings do not count).
 * Run before JSON.parse: parsing is iterative but JSON.stringify and other walkers recurse.
 */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: the next character is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return false;
}

type Receipt = { acked: number } | { refused: "seq_out_of_window" };

class PollSession {
  readonly session: Session;
  private outbox: { seq: number; message: ServerMessage }[] = [];
  private nextOut = 1;
  private lastIn = 0;
  /** Messages handed to the session and finished (lastIn - processed are queued behind a slow one). */
  private processed = 0;
  private pendingIn = new Map<number, string>();
  private waiter: (() => void) | undefined;
  private chain = Promise.resolve();
  lastSeen = Date.now();
  closed = false;

  constructor(
    newSession: SessionFactory,
    readonly id: string,
    address: string,
    private readonly window: number,
    private readonly release: () => void,
    /** Ends this session from our side (its next GET finds it gone: the page reconnects). */
    hangUp: (s: PollSession) => void,
  ) {
    this.session = newSession((m) => {
      this.outbox.push({ seq: this.nextOut++, message: m });
      if (this.outbox.length > MAX_QUEUED) this.outbox.shift(); // a client that never polls
      this.waiter?.();
    }, address, () => hangUp(this));
  }

  /** Takes client message `seq`; runs every message in order exactly once. */
  receive(seq: number, raw: string): Receipt {
    if (seq <= this.lastIn || this.pendingIn.has(seq)) return { acked: this.lastIn }; // a retry
    // Measured from what has run, so messages queued behind a slow offer count too: at most
    // `window` messages are held per session, whether out of order or waiting their turn.
    if (seq > this.processed + this.window) return { refused: "seq_out_of_window" };
    this.pendingIn.set(seq, raw);
    while (this.pendingIn.has(this.lastIn + 1)) {
      const next = this.pendingIn.get(this.lastIn + 1)!;
      this.pendingIn.delete(++this.lastIn);
      this.chain = this.chain
        .then(() => this.session.receive(next))
        .catch((err) => log.warn("long-poll message failed", { session: this.id, error: (err as Error).message }))
        .then(() => void this.processed++);
    }
    return { acked: this.lastIn };
  }

  /** Messages after `after` (the client's acknowledgement), waiting up to holdMs for one. */
  async poll(after: number, holdMs: number): Promise<{ seq: number; message: ServerMessage }[]> {
    this.outbox = this.outbox.filter((m) => m.seq > after);
    this.waiter?.(); // only the newest GET waits: the one before it answers now
    if (!this.outbox.length && !this.closed) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          if (this.waiter === done) this.waiter = undefined;
          resolve();
        };
        const timer = setTimeout(done, holdMs);
        this.waiter = done;
      });
    }
    return this.outbox.filter((m) => m.seq > after);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.release();
    this.waiter?.();
    this.pendingIn.clear();
    this.chain = this.chain.then(() => this.session.leave());
  }
}

/** Sends a refusal: JSON {error, message}, counted per code. */
function refuse(ctx: Koa.Context, status: number, code: string, message: string): void {
  metrics.signalingErrors.inc({ code: `longpoll_${code}` });
  log.info("long-poll request refused", { code, status });
  ctx.status = status;
  ctx.body = { error: code, message };
}

export function longPollSignaling(newSession: SessionFactory, config: Config, connections: KeyedQuota) {
  const sessions = new Map<string, PollSession>();
  const bodyLimit = config.maxMessageBytes + ENVELOPE_BYTES;
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [id, s] of sessions) {
      if (now - s.lastSeen > IDLE_MS) {
        log.info("long-poll session expired", { session: id });
        s.close();
        sessions.delete(id);
      }
    }
  }, 5000);
  sweep.unref();

  /** POST /signal/:id: size, depth, shape and window checks, each before anything is kept. */
  async function post(ctx: Koa.Context, s: PollSession): Promise<void> {
    const tooLarge = () => {
      ctx.set("Connection", "close"); // do not read (or keep-alive past) the rest of the body
      refuse(ctx, 413, "too_large", `body over ${bodyLimit} bytes (MAX_MESSAGE_BYTES + ${ENVELOPE_BYTES})`);
    };
    const declared = Number(ctx.get("Content-Length") || 0);
    if (declared > bodyLimit) return tooLarge();
    const raw = await readBody(ctx.req, bodyLimit);
    if (raw === "too_large") return tooLarge();
    if (raw === "aborted") return refuse(ctx, 400, "aborted", "the request body did not arrive");
    if (jsonDepthExceeds(raw, MAX_JSON_DEPTH)) return refuse(ctx, 400, "too_deep", `JSON nested deeper than ${MAX_JSON_DEPTH}`);
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      return refuse(ctx, 400, "bad_json", "body must be JSON {seq, message}");
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) return refuse(ctx, 400, "bad_json", "body must be a JSON object {seq, message}");
    const { seq, message } = body as { seq?: unknown; message?: unknown };
    if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1) return refuse(ctx, 400, "bad_seq", "seq must be a positive integer");
    // The message itself goes through the same parser as a WebSocket frame (errors come back as `error` messages).
    const text = typeof message === "string" ? message : JSON.stringify(message ?? null);
    const r = s.receive(seq, text);
    if ("refused" in r) {
      return refuse(ctx, 409, r.refused, `seq ${seq} is more than LONGPOLL_WINDOW (${config.longPollWindow}) ahead of the messages run so far; send the missing ones first`);
    }
    ctx.status = 202;
    ctx.body = r;
  }

  const middleware: Koa.Middleware = async (ctx, next) => {
    const m = /^\/signal(?:\/([0-9a-f-]{36}))?$/.exec(ctx.path);
    if (!m) return next();
    ctx.set("Cache-Control", "no-store");
    // A page redirected to another node (several nodes) polls that node from its own origin. A
    // session id is the only credential here, and the WebSocket is open to any origin already.
    ctx.set("Access-Control-Allow-Origin", "*");
    if (ctx.method === "OPTIONS") {
      ctx.set("Access-Control-Allow-Methods", "GET, POST, DELETE");
      ctx.set("Access-Control-Allow-Headers", "content-type");
      ctx.set("Access-Control-Max-Age", "600");
      ctx.status = 204;
      return;
    }
    const id = m[1];
    if (!id) {
      if (ctx.method !== "POST") return refuse(ctx, 405, "method_not_allowed", "POST /signal opens a session");
      const address = requestAddress(ctx.req, config.trustedProxies);
      const release = connections.take(address);
      if (!release) {
        return refuse(ctx, 429, "too_many_connections", `this address already has ${config.maxConnectionsPerIp} signaling connections (MAX_CONNECTIONS_PER_IP)`);
      }
      const s = new PollSession(newSession, randomUUID(), address, config.longPollWindow, release, hangUp);
      sessions.set(s.id, s);
      ctx.status = 201;
      // Several nodes: the session lives here, so the page sends its later requests to this node
      // itself (a load balancer in front need not be sticky).
      ctx.body = config.nodeUrl ? { session: s.id, node: config.nodeUrl } : { session: s.id };
      return;
    }
    const s = sessions.get(id);
    if (!s) return refuse(ctx, 404, "unknown_session", "no such long-poll session (expired?); start a new one");
    s.lastSeen = Date.now();
    if (ctx.method === "POST") {
      await post(ctx, s);
    } else if (ctx.method === "GET") {
      const after = Number(ctx.query.after ?? 0);
      if (!Number.isSafeInteger(after) || after < 0) return refuse(ctx, 400, "bad_after", "after must be a non-negative integer");
      const messages = await s.poll(after, HOLD_MS);
      s.lastSeen = Date.now();
      ctx.body = { messages };
    } else if (ctx.method === "DELETE") {
      s.close();
      sessions.delete(id);
      ctx.status = 204;
    } else {
      refuse(ctx, 405, "method_not_allowed", "use GET, POST or DELETE");
    }
  };

  /** What was queued (the `shutdown`) goes out with the held GET first; then the session is gone. */
  function hangUp(s: PollSession): void {
    setTimeout(() => {
      s.close();
      if (sessions.get(s.id) === s) sessions.delete(s.id);
    }, HANG_UP_AFTER_MS).unref();
  }

  return {
    middleware,
    /** Graceful: every session gets `shutdown`, delivered by its held (or next) GET. */
    notifyShutdown(reconnectAfterMs: number): void {
      for (const s of sessions.values()) s.session.notifyShutdown(reconnectAfterMs);
    },
    close(): void {
      clearInterval(sweep);
      for (const s of sessions.values()) s.close();
      sessions.clear();
    },
    get size() {
      return sessions.size;
    },
  };
}
