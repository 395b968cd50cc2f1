// Signaling over HTTP long polling, for networks where WebSocket is blocked: the same
// SignalingSession as /ws, with numbered messages both ways so nothing is lost or duplicated.
//   POST   /signal                  → 201 {"session": id}
//   POST   /signal/:id  {"seq":n,"message":{…}}  → 202 {"acked": n}  (client seq starts at 1)
//   GET    /signal/:id?after=n      → 200 {"messages":[{"seq":m,"message":{…}}]}, held up to 20 s
//   DELETE /signal/:id              → 204 (leave)
import { randomUUID } from "node:crypto";
import type Koa from "koa";
import type { Config } from "./config.ts";
import { logger } from "./log.ts";
import type { ServerMessage } from "./protocol.ts";
import type { Rooms } from "./Rooms.ts";
import { SignalingSession } from "./signaling.ts";

const log = logger("longpoll");
const HOLD_MS = 20_000;
const IDLE_MS = 30_000;
const MAX_QUEUED = 1000;

class PollSession {
  readonly session: SignalingSession;
  private outbox: { seq: number; message: ServerMessage }[] = [];
  private nextOut = 1;
  private lastIn = 0;
  private pendingIn = new Map<number, string>();
  private waiter: (() => void) | undefined;
  private chain = Promise.resolve();
  lastSeen = Date.now();
  closed = false;

  constructor(rooms: Rooms, config: Config, readonly id: string) {
    this.session = new SignalingSession(rooms, config, (m) => {
      this.outbox.push({ seq: this.nextOut++, message: m });
      if (this.outbox.length > MAX_QUEUED) this.outbox.shift(); // a client that never polls
      this.waiter?.();
    });
  }

  /** Takes client message `seq`; runs every message in order exactly once. */
  receive(seq: number, raw: string): number {
    if (seq > this.lastIn && !this.pendingIn.has(seq)) this.pendingIn.set(seq, raw);
    while (this.pendingIn.has(this.lastIn + 1)) {
      const next = this.pendingIn.get(this.lastIn + 1)!;
      this.pendingIn.delete(++this.lastIn);
      this.chain = this.chain.then(() => this.session.receive(next));
    }
    return this.lastIn;
  }

  /** Messages after `after` (the client's acknowledgement), waiting up to holdMs for one. */
  async poll(after: number, holdMs: number): Promise<{ seq: number; message: ServerMessage }[]> {
    this.outbox = this.outbox.filter((m) => m.seq > after);
    if (!this.outbox.length && !this.closed) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, holdMs);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.outbox.filter((m) => m.seq > after);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.waiter?.();
    this.chain = this.chain.then(() => this.session.leave());
  }
}

async function readBody(ctx: Koa.Context, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of ctx.req) {
    size += (c as Buffer).length;
    if (size > limit) ctx.throw(413, `body over ${limit} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString();
}

export function longPollSignaling(rooms: Rooms, config: Config) {
  const sessions = new Map<string, PollSession>();
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

  const middleware: Koa.Middleware = async (ctx, next) => {
    const m = /^\/signal(?:\/([0-9a-f-]{36}))?$/.exec(ctx.path);
    if (!m) return next();
    ctx.set("Cache-Control", "no-store");
    const id = m[1];
    if (!id) {
      if (ctx.method !== "POST") ctx.throw(405);
      const s = new PollSession(rooms, config, randomUUID());
      sessions.set(s.id, s);
      ctx.status = 201;
      ctx.body = { session: s.id };
      return;
    }
    const s = sessions.get(id);
    if (!s) {
      ctx.status = 404;
      ctx.body = { error: "unknown_session", message: "no such long-poll session (expired?); start a new one" };
      return;
    }
    s.lastSeen = Date.now();
    if (ctx.method === "POST") {
      const raw = await readBody(ctx, config.maxMessageBytes * 2);
      let body: { seq?: unknown; message?: unknown } = {};
      try {
        body = JSON.parse(raw);
      } catch {
        ctx.throw(400, "body must be JSON {seq, message}");
      }
      if (!Number.isInteger(body.seq) || (body.seq as number) < 1) ctx.throw(400, "seq must be a positive integer");
      // The message itself goes through the same parser as a WebSocket frame (errors come back as `error` messages).
      const message = typeof body.message === "string" ? body.message : JSON.stringify(body.message ?? null);
      ctx.status = 202;
      ctx.body = { acked: s.receive(body.seq as number, message) };
    } else if (ctx.method === "GET") {
      const after = Number(ctx.query.after ?? 0);
      if (!Number.isInteger(after) || after < 0) ctx.throw(400, "after must be a non-negative integer");
      const messages = await s.poll(after, HOLD_MS);
      s.lastSeen = Date.now();
      ctx.body = { messages };
    } else if (ctx.method === "DELETE") {
      s.close();
      sessions.delete(id);
      ctx.status = 204;
    } else {
      ctx.throw(405);
    }
  };

  return {
    middleware,
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
