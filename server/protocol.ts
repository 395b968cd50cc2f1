// The signaling protocol: one schema per message (zod), parsed in one place.
import { z } from "zod";

export const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;

const Join = z.object({
  type: z.literal("join"),
  room: z.string().regex(ROOM_RE, "room must be 1-64 characters of A-Z a-z 0-9 _ -"),
  name: z.string().trim().min(1, "name must not be empty").max(64, "name must be at most 64 characters"),
});
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

export const ClientMessage = z.discriminatedUnion("type", [Join, Offer, Candidate, Leave, Media, Record]);
export type ClientMessage = z.infer<typeof ClientMessage>;
export type JoinMessage = z.infer<typeof Join>;
export type CandidateInit = NonNullable<z.infer<typeof Candidate>["candidate"]>;

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
  | "recording_refused"
  | "internal";

export interface ParticipantInfo {
  id: string;
  name: string;
  audio: boolean;
  video: boolean;
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
  | { type: "joined"; participantId: string; room: string; iceServers: unknown[]; canRecord: boolean }
  | { type: "answer"; sdp: string }
  | { type: "candidate"; candidate: CandidateInit | null }
  | {
      type: "participants";
      participants: ParticipantInfo[];
      tile: { width: number; height: number };
      recording: { id: string; startedAt: string } | null;
    }
  | { type: "error"; code: ErrorCode; message: string };

export class ProtocolError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const KNOWN_TYPES = new Set(["join", "offer", "candidate", "leave", "media", "record"]);

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
  const r = ClientMessage.safeParse(data);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue.path.length ? `${issue.path.join(".")}: ` : "";
    throw new ProtocolError("invalid_message", `${type}: ${where}${issue.message}`);
  }
  return r.data;
}
