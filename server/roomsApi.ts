// REST for rooms and moderation, under /api (guarded like the rest of it: API_TOKEN, loopback).
//   GET    /api/rooms                                   rooms, participants, layout (and tiles), recording
//   DELETE /api/rooms/:room                             end the room (everyone is told)
//   PUT    /api/rooms/:room/layout                      {layout: grid|speaker|pinned, participant?}: from the next frame
//   POST   /api/rooms/:room/participants/:id/kick       {reason?}: removed, told why, its token cannot rejoin
//   POST   /api/rooms/:room/participants/:id/mute       {audio?, video?}: true keeps it out of the mix, false lets it back
// The routes are answered by roomsRequest() wherever the room lives: in this process, or in the
// media worker that holds it (server/media/), which gets the same request over its channel.
import type Koa from "koa";
import { z } from "zod";
import { readBody } from "./httpBody.ts";
import type { Rooms } from "./Rooms.ts";

const Kick = z.object({ reason: z.string().max(200).optional() }).strict();
const Mute = z.object({ audio: z.boolean().optional(), video: z.boolean().optional() }).strict();
const Layout = z.object({ layout: z.enum(["grid", "speaker", "pinned"]), participant: z.string().max(128).optional() }).strict();

const LAYOUT_PATH = /^\/api\/rooms\/([A-Za-z0-9_-]{1,64})\/layout$/;
const ROOM_PATH = /^\/api\/rooms\/([A-Za-z0-9_-]{1,64})(?:\/participants\/([^/]{1,128})\/(kick|mute))?$/;

/** An API answer: status and JSON body (none for 204). */
export interface ApiReply {
  status: number;
  body?: unknown;
}

const fail = (status: number, error: string, message: string): ApiReply => ({ status, body: { error, message } });

/** Which rooms route `path` is: the list, one room's (named), or none of these. */
export function roomsRoute(path: string): { list: true } | { room: string } | undefined {
  if (path === "/api/rooms") return { list: true };
  const m = LAYOUT_PATH.exec(path) ?? ROOM_PATH.exec(path);
  return m ? { room: m[1]! } : undefined;
}

/** The rooms listed as GET /api/rooms shows them. */
export function listRooms(rooms: Rooms): unknown[] {
  return rooms.all().map((r) => {
    const { recording, layout, pinned, activeSpeaker } = r.state();
    return { id: r.id, participants: r.list(), layout, pinned, activeSpeaker, tiles: r.currentMixer?.layout() ?? [], recording };
  });
}

/** One rooms request against `rooms`; undefined when no route takes it (the next middleware may). */
export function roomsRequest(rooms: Rooms, method: string, path: string, body: unknown): ApiReply | undefined {
  if (path === "/api/rooms") return method === "GET" ? { status: 200, body: listRooms(rooms) } : undefined;
  const l = LAYOUT_PATH.exec(path);
  if (l) {
    if (method !== "PUT") return fail(405, "method_not_allowed", "layout takes PUT");
    const parsed = Layout.safeParse(body);
    if (!parsed.success) return fail(400, "bad_request", parsed.error.issues[0]!.message);
    const room = rooms.get(l[1]!);
    if (!room) return fail(404, "unknown_room", `no room "${l[1]}"`);
    const err = room.setLayout(parsed.data.layout, parsed.data.participant);
    if (err) return fail(err.code === "unknown_participant" ? 404 : 400, err.code, err.message);
    const { layout, pinned, activeSpeaker } = room.state();
    return { status: 200, body: { layout, pinned, activeSpeaker } };
  }
  const m = ROOM_PATH.exec(path);
  if (!m) return undefined;
  const [, roomId, participantId, action] = m;
  const room = rooms.get(roomId!);
  if (!action) {
    if (method !== "DELETE") return undefined;
    if (!room) return fail(404, "unknown_room", `no room "${roomId}"`);
    room.end();
    return { status: 204 };
  }
  if (method !== "POST") return fail(405, "method_not_allowed", `${action} takes POST`);
  const parsed = (action === "kick" ? Kick : Mute).safeParse(body);
  if (!parsed.success) return fail(400, "bad_request", parsed.error.issues[0]!.message);
  if (!room) return fail(404, "unknown_room", `no room "${roomId}"`);
  const b = parsed.data as { reason?: string; audio?: boolean; video?: boolean };
  const done = action === "kick" ? room.kick(participantId!, b.reason) : room.moderate(participantId!, b.audio, b.video);
  if (!done) return fail(404, "unknown_participant", `no participant "${participantId}" in room "${roomId}"`);
  return action === "kick" ? { status: 204 } : { status: 200, body: room.participant(participantId!)?.info() };
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

/** Answers a rooms request (body parsed); undefined: not ours, pass it on. */
export type RoomsHandler = (method: string, path: string, body: unknown) => Promise<ApiReply | undefined> | ApiReply | undefined;

/** The rooms routes over HTTP, answered by `handle` (this process's rooms, or the media workers'). */
export function roomsApi(handle: RoomsHandler | Rooms): Koa.Middleware {
  const answer: RoomsHandler = typeof handle === "function" ? handle : (method, path, body) => roomsRequest(handle, method, path, body);
  return async (ctx, next) => {
    if (!roomsRoute(ctx.path)) return next();
    const body = ctx.method === "PUT" || ctx.method === "POST" ? await jsonBody(ctx) : undefined;
    const reply = await answer(ctx.method, ctx.path, body);
    if (!reply) return next();
    ctx.status = reply.status;
    if (reply.body !== undefined) ctx.body = reply.body;
  };
}
