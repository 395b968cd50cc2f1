// REST for rooms and moderation, under /api (guarded like the rest of it: API_TOKEN, loopback).
//   GET    /api/rooms                                   rooms, participants, layout (and tiles), recording
//   DELETE /api/rooms/:room                             end the room (everyone is told)
//   PUT    /api/rooms/:room/layout                      {layout: grid|speaker|pinned, participant?}: from the next frame
//   POST   /api/rooms/:room/participants/:id/kick       {reason?}: removed, told why, its token cannot rejoin
//   POST   /api/rooms/:room/participants/:id/mute       {audio?, video?}: true keeps it out of the mix, false lets it back
import type Koa from "koa";
import { z } from "zod";
import { readBody } from "./httpBody.ts";
import type { Rooms } from "./Rooms.ts";

const Kick = z.object({ reason: z.string().max(200).optional() }).strict();
const Mute = z.object({ audio: z.boolean().optional(), video: z.boolean().optional() }).strict();
const Layout = z.object({ layout: z.enum(["grid", "speaker", "pinned"]), participant: z.string().max(128).optional() }).strict();

function fail(ctx: Koa.Context, status: number, error: string, message: string): void {
  ctx.status = status;
  ctx.body = { error, message };
}

async function jsonBody(ctx: Koa.Context): Promise<unknown> {
  if (Number(ctx.get("Content-Length") || 0) > 4096) ctx.throw(413, "body over 4096 bytes");
  const raw = await readBody(ctx.req, 4096);
  if (raw === "too_large" || raw === "aborted") ctx.throw(413, "body over 4096 bytes");
  if (!raw.trim()) return {};
  try {
    return JSON.parse(raw);
  } catch {
    ctx.throw(400, "body must be JSON");
  }
}

export function roomsApi(rooms: Rooms): Koa.Middleware {
  return async (ctx, next) => {
    if (ctx.path === "/api/rooms" && ctx.method === "GET") {
      ctx.body = rooms.all().map((r) => {
        const { recording, layout, pinned, activeSpeaker } = r.state();
        return { id: r.id, participants: r.list(), layout, pinned, activeSpeaker, tiles: r.currentMixer?.layout() ?? [], recording };
      });
      return;
    }
    const l = /^\/api\/rooms\/([A-Za-z0-9_-]{1,64})\/layout$/.exec(ctx.path);
    if (l) {
      if (ctx.method !== "PUT") return fail(ctx, 405, "method_not_allowed", "layout takes PUT");
      const body = Layout.safeParse(await jsonBody(ctx));
      if (!body.success) return fail(ctx, 400, "bad_request", body.error.issues[0]!.message);
      const room = rooms.get(l[1]!);
      if (!room) return fail(ctx, 404, "unknown_room", `no room "${l[1]}"`);
      const err = room.setLayout(body.data.layout, body.data.participant);
      if (err) return fail(ctx, err.code === "unknown_participant" ? 404 : 400, err.code, err.message);
      const { layout, pinned, activeSpeaker } = room.state();
      ctx.body = { layout, pinned, activeSpeaker };
      return;
    }
    const m = /^\/api\/rooms\/([A-Za-z0-9_-]{1,64})(?:\/participants\/([^/]{1,128})\/(kick|mute))?$/.exec(ctx.path);
    if (!m) return next();
    const [, roomId, participantId, action] = m;
    const room = rooms.get(roomId!);
    if (!action) {
      if (ctx.method !== "DELETE") return next();
      if (!room) return fail(ctx, 404, "unknown_room", `no room "${roomId}"`);
      room.end();
      ctx.status = 204;
      return;
    }
    if (ctx.method !== "POST") return fail(ctx, 405, "method_not_allowed", `${action} takes POST`);
    const body = (action === "kick" ? Kick : Mute).safeParse(await jsonBody(ctx));
    if (!body.success) return fail(ctx, 400, "bad_request", body.error.issues[0]!.message);
    if (!room) return fail(ctx, 404, "unknown_room", `no room "${roomId}"`);
    const b = body.data as { reason?: string; audio?: boolean; video?: boolean };
    const done = action === "kick" ? room.kick(participantId!, b.reason) : room.moderate(participantId!, b.audio, b.video);
    if (!done) return fail(ctx, 404, "unknown_participant", `no participant "${participantId}" in room "${roomId}"`);
    ctx.status = action === "kick" ? 204 : 200;
    if (action === "mute") ctx.body = room.participant(participantId!)?.info();
  };
}
