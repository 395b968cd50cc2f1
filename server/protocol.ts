// The signaling protocol: one schema per message (zod), parsed in one place.
import { z } from "zod";
import type { IceServer } from "./turn.ts";

export const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * A display name as others will see it: control characters, bidi overrides/isolates and zero-width
 * characters (all of Unicode's Cc and Cf) removed, runs of white space made one space, trimmed. Names
 * that impersonate by invisible or reordering characters then read as what they are.
 */
export function cleanName(raw: string): string {
  return raw.replace(/\s+/g, " ").replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, "").replace(/ {2,}/g, " ").trim();
}

const Join = z.object({
  type: z.literal("join"),
  room: z.string().regex(ROOM_RE, "room must be 1-64 characters of A-Z a-z 0-9 _ -"),
  name: z.string().max(256, "name must be at most 64 characters").transform(cleanName)
    .pipe(z.string().min(1, "name must not be empty").max(64, "name must be at most 64 characters")),
  /** A room token (JWT) where the server has AUTH_SECRET. */
  token: z.string().max(4096).optional(),
  /** Which rung of the composite: auto (follow the link, default), high, low (data saver). */
  quality: z.enum(["auto", "high", "low"]).optional(),
});
/** Change the rung policy during the call (the page's data-saver toggle). */
const Quality = z.object({ type: z.literal("quality"), quality: z.enum(["auto", "high", "low"]) });
const Offer = z.object({ type: z.literal("offer"), sdp: z.string().min(1).max(64 * 1024) });
const Candidate = z.object({
  type: z.literal("candidate"),
  candidate: z
    .object({
      candidate: z.string().max(1024),
      sdpMid: z.string().max(64).nullish(),
      sdpMLineIndex: z.number().int().min(0).max(64).nullish(),
      usernameFragment: z.string().max(256).nullish(),
    })
    .nullable(),
});
const Leave = z.object({ type: z.literal("leave") });
/** The client's microphone / camera state: a muted mic leaves the mix, a camera off shows the placeholder. */
const Media = z.object({ type: z.literal("media"), audio: z.boolean(), video: z.boolean() });
/** Start (on) or stop the room's recording from the page, where CLIENT_RECORDING allows it. */
const Record = z.object({ type: z.literal("record"), on: z.boolean() });
/** Moderation by a holder of the `moderate` right: kick or mute a participant, end the room, or set its layout. */
const Moderate = z.discriminatedUnion("action", [
  z.object({ type: z.literal("moderate"), action: z.literal("kick"), participant: z.string().max(128), reason: z.string().max(200).optional() }),
  z.object({ type: z.literal("moderate"), action: z.literal("mute"), participant: z.string().max(128), audio: z.boolean().optional(), video: z.boolean().optional() }),
  z.object({ type: z.literal("moderate"), action: z.literal("end"), reason: z.string().max(200).optional() }),
  z.object({ type: z.literal("moderate"), action: z.literal("layout"), layout: z.enum(["grid", "speaker", "pinned"]), participant: z.string().max(128).optional() }),
]);

const Plain = z.discriminatedUnion("type", [Join, Offer, Candidate, Leave, Media, Record, Quality]);
export type ClientMessage = z.infer<typeof Plain> | z.infer<typeof Moderate>;
export type JoinMessage = z.infer<typeof Join>;
export type CandidateInit = NonNullable<z.infer<typeof Candidate>["candidate"]>;
export type ModerateMessage = z.infer<typeof Moderate>;

export type ErrorCode =
  | "bad_json"
  | "too_large"
  | "unknown_type"
  | "invalid_message"
  | "not_joined"
  | "already_joined"
  | "room_full"
  | "bad_offer"
  | "rate_limited"
  | "forbidden"
  | "unauthorized"
  | "recording_refused"
  | "server_full"
  /** Overloaded just now (the overload policy's first step): try again shortly, or another node. */
  | "server_busy"
  | "too_many_joins"
  | "busy"
  | "offer_timeout"
  | "unknown_participant"
  /** Several nodes: the room registry (Redis) is out of reach, or every node is at capacity. */
  | "cluster_unavailable"
  | "cluster_full"
  | "internal";

export interface ParticipantInfo {
  id: string;
  name: string;
  /** The mic is sent and not muted. */
  audio: boolean;
  /** The camera is sent and on. */
  video: boolean;
  /** What its offer sends: null before the offer; neither = a viewer (watching, no tile). */
  sends: { audio: boolean; video: boolean } | null;
  /** A moderator keeps its mic or camera out of the mix. */
  moderated: boolean;
  /** The size of the composite it receives now (its rung), e.g. "640x360"; null without video. */
  rung: string | null;
  /** Its tile in the composite now (its camera need not send more pixels); null without a tile. */
  tile: { width: number; height: number } | null;
  /** Speaking now (sustained voice, with a hold: what the highlight shows). */
  speaking: boolean;
}

/** The room's arrangement: the grid, the active speaker large, or a pinned participant large. */
export interface RoomLayout {
  layout: "grid" | "speaker" | "pinned";
  /** The pinned participant (layout pinned). */
  pinned: string | null;
  /** Who the speaker layout shows large now (the last to hold the floor), if anyone has spoken. */
  activeSpeaker: string | null;
}

/** A chat line as relayed to the room (over each participant's "chat" data channel). */
export interface ChatMessage {
  type: "chat";
  from: string;
  name: string;
  text: string;
  ts: number;
}

export const CHAT_MAX_CHARS = 500;
/** Parses what a client sends on its "chat" data channel: {"text": string}. */
export function parseChatInput(raw: string | Buffer): string {
  let data: unknown;
  try {
    data = JSON.parse(raw.toString());
  } catch {
    throw new ProtocolError("bad_json", "chat message is not valid JSON");
  }
  const text = (data as { text?: unknown })?.text;
  if (typeof text !== "string" || !text.trim()) throw new ProtocolError("invalid_message", "chat message needs a non-empty string `text`");
  if (text.length > CHAT_MAX_CHARS) throw new ProtocolError("too_large", `chat message longer than ${CHAT_MAX_CHARS} characters`);
  return text.trim();
}

export type ServerMessage =
  | { type: "joined"; participantId: string; room: string; name: string; iceServers: IceServer[]; canRecord: boolean; rights: string[] }
  | { type: "answer"; sdp: string }
  | { type: "candidate"; candidate: CandidateInit | null }
  | {
      type: "participants";
      participants: ParticipantInfo[];
      tile: { width: number; height: number };
      recording: { id: string; startedAt: string } | null;
    } & RoomLayout
  | { type: "error"; code: ErrorCode; message: string }
  /** You were removed from the room (do not rejoin automatically). */
  | { type: "kicked"; reason: string }
  /** A moderator turned your mic/camera off in the mix (true = muted by the moderator). */
  | { type: "moderated"; audio: boolean; video: boolean }
  /** The room was ended by a moderator. */
  | { type: "room_ended"; reason: string }
  /** Who speaks now (ids) and who the speaker view shows large; on every change, at most 5 a second. */
  | { type: "speakers"; speaking: string[]; activeSpeaker: string | null }
  /** The server is going away: reconnect (elsewhere) in a moment. */
  | { type: "shutdown"; reconnectAfterMs: number }
  /** The room lives on another node: connect to `url` and send the same join there (nothing was joined here). */
  | { type: "redirect"; url: string; room: string };

export class ProtocolError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const KNOWN_TYPES = new Set(["join", "offer", "candidate", "leave", "media", "record", "moderate", "quality"]);

/** Parses one raw message; throws ProtocolError with the code the client will receive. */
export function parseClientMessage(raw: string | Buffer, maxBytes: number): ClientMessage {
  const size = typeof raw === "string" ? Buffer.byteLength(raw) : raw.length;
  if (size > maxBytes) throw new ProtocolError("too_large", `message of ${size} bytes exceeds the ${maxBytes}-byte limit`);
  let data: unknown;
  try {
    data = JSON.parse(raw.toString());
  } catch {
    throw new ProtocolError("bad_json", "message is not valid JSON");
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new ProtocolError("invalid_message", "message must be a JSON object with a string `type`");
  }
  const type = (data as { type?: unknown }).type;
  if (typeof type !== "string") throw new ProtocolError("invalid_message", "message must have a string `type`");
  if (!KNOWN_TYPES.has(type)) throw new ProtocolError("unknown_type", `unknown message type "${type.slice(0, 40)}"`);
  // Moderation is keyed by `action` within its type; everything else by `type` alone.
  const r = type === "moderate" ? Moderate.safeParse(data) : Plain.safeParse(data);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue.path.length ? `${issue.path.join(".")}: ` : "";
    throw new ProtocolError("invalid_message", `${type}: ${where}${issue.message}`);
  }
  return r.data;
}
