// A signaling session, whatever carries it (WebSocket: ./websocket.ts; long polling: ./longpoll.ts):
// every message parsed by the schema in protocol.ts; a bad message gets an `error` reply, and the
// connection, the room and every other room keep going. What a client can make us spend here is
// bounded: messages per second (checked as they arrive) and log lines.
import { AdmissionError } from "../admission.ts";
import { PlacementError, type Cluster } from "../cluster/Cluster.ts";
import type { Config } from "../config.ts";
import { logger } from "../../telemetry/log.ts";
import { metrics } from "../../telemetry/metrics.ts";
import { OPEN_RIGHTS, type CloseReason, type Participant } from "../Participant.ts";
import { cleanName, parseClientMessage, ProtocolError, type ClientMessage, type ModerateMessage, type ServerMessage } from "../protocol.ts";
import { TokenBucket } from "../rateLimit.ts";
import type { Room, RoomState, SeatOptions, SpeakersState } from "../Room.ts";
import { TokenError, verifyRoomToken } from "../roomTokens.ts";
import type { Rooms } from "../Rooms.ts";
import type { Revocations } from "../revocations.ts";
import { iceServersFor } from "../turn.ts";

const log = logger("signaling");
/** Rejected messages are logged at most this often per session (the rest are counted, and summed up). */
const rejectLog = () => new TokenBucket(0.2, 5);

/** What the client is told when its participant ends for a reason it did not choose. */
function closeNotice(reason: CloseReason, detail: string | undefined): ServerMessage | undefined {
  switch (reason) {
    case "kicked":
      return { type: "kicked", reason: detail ?? "removed by a moderator" };
    case "room-ended":
      return { type: "room_ended", reason: detail ?? "the room was ended" };
    case "no-offer":
      return { type: "error", code: "offer_timeout", message: "no offer came in time after join; join again" };
    default:
      return undefined;
  }
}

/** What signaling may ask of recording (the page's record button). */
export interface RecordingControl {
  start(room: string): Promise<unknown>;
  stop(room: string): Promise<unknown>;
}

/**
 * What a transport (WebSocket, long polling) needs of a session: the arrival check, messages in
 * order, and the ends. SignalingSession serves it with this process's rooms; a session relayed to a
 * media worker (issue 22) will serve the same, so the transports need not know where rooms live.
 */
export interface Session {
  admit(): boolean;
  receive(raw: string | Buffer, admitted?: boolean): Promise<void>;
  leave(reason?: CloseReason): void;
  notifyShutdown(reconnectAfterMs: number): void;
  readonly participantId: string | undefined;
  /** Set once the client kept sending far over the rate: the transport should close it. */
  readonly flooding: boolean;
}

/**
 * Makes a transport's session: `send` writes to the client, `address` is the client's, `hangUp`
 * ends the connection from our side (after a `shutdown`: the client reconnects after its pause).
 */
export type SessionFactory = (send: (m: ServerMessage) => void, address: string, hangUp: () => void) => Session;

/** Sessions served by this process's rooms. */
export function localSessions(rooms: Rooms, config: Config, recording?: RecordingControl): SessionFactory {
  return (send, address) => new SignalingSession(rooms, config, send, address, recording);
}

/** Who a join's token says this is, and the seat it grants (open rooms: anyone, as they name themselves). */
export interface JoinGrant {
  name?: string;
  seat: SeatOptions;
}

/**
 * The token check of a join (AUTH_SECRET set): valid for this room, not revoked. Without Redis to
 * ask (several nodes) nobody with a token joins.
 */
export async function checkJoinToken(config: Config, revocations: Revocations, roomId: string, token: string | undefined): Promise<JoinGrant> {
  if (!config.authSecret) return { seat: {} };
  let g;
  try {
    g = await verifyRoomToken(config.authSecret, token, roomId);
  } catch (err) {
    if (err instanceof TokenError) throw new ProtocolError(err.code, err.message);
    throw err;
  }
  let revoked: boolean;
  try {
    revoked = g.tokenId !== undefined && (await revocations.isRevoked(g.tokenId));
  } catch {
    throw new ProtocolError("cluster_unavailable", "cannot check the room token now (the cluster registry is out of reach); try again");
  }
  if (revoked) throw new ProtocolError("forbidden", "this room token was revoked");
  return { name: cleanName(g.name) || undefined, seat: { rights: g.rights, tokenId: g.tokenId } };
}

/**
 * Several nodes: a room not open here is placed (or found) in the registry; when it lives on
 * another node the client is sent there (true: seat it here; false: a `redirect` was sent). It
 * connects to that node itself: its media goes there anyway, and no node carries another's
 * signaling, so a node's death ends only its own calls.
 */
export async function placeJoin(cluster: Cluster, openHere: boolean, address: string, roomId: string, send: (m: ServerMessage) => void): Promise<boolean> {
  if (openHere) {
    metrics.clusterJoins.inc({ where: "local" });
    return true;
  }
  // Each placement may open a room (and counts against a node until its next heartbeat): an
  // address gets a few, before any room of its own exists, so one client cannot fill the cluster.
  if (!cluster.placements.take(address)) {
    metrics.clusterJoins.inc({ where: "refused" });
    throw new ProtocolError("rate_limited", "too many new rooms from your address; wait a few seconds");
  }
  let owner;
  try {
    owner = await cluster.place(roomId);
  } catch (err) {
    if (!(err instanceof PlacementError)) throw err;
    metrics.clusterJoins.inc({ where: "refused" });
    throw new ProtocolError(err.code, err.message);
  }
  if (cluster.isSelf(owner)) {
    metrics.clusterJoins.inc({ where: "local" });
    return true;
  }
  metrics.clusterJoins.inc({ where: "redirect" });
  send({ type: "redirect", url: owner.url, room: roomId });
  return false;
}

/**
 * What every session does before a message is acted on: the rate check at arrival, parsing by the
 * schema, and an `error` reply (counted, and logged at a bounded rate) for whatever is refused.
 * SignalingSession acts on messages with this process's rooms; a relayed session (server/media/)
 * hands them to the media worker that holds the room.
 */
export abstract class GuardedSession implements Session {
  /** Signaling is a handful of messages per call; a flood is refused, not queued. */
  private readonly limit = new TokenBucket(20, 60);
  /** Refusals a client may run up; past them it is flooding and its transport drops it. */
  private readonly refusals = new TokenBucket(20, 200);
  private lastLimitedReply = -Infinity;
  private readonly logLimit = rejectLog();
  private unlogged = 0;
  /** Set once the client kept sending far over the rate: the transport should close it. */
  flooding = false;

  constructor(
    protected readonly config: Config,
    protected readonly send: (m: ServerMessage) => void,
    /** The client's address (per-address limits). */
    readonly address = "unknown",
  ) {}

  abstract readonly participantId: string | undefined;
  abstract leave(reason?: CloseReason): void;
  /** Acts on one valid message; a ProtocolError thrown is the client's reply. */
  protected abstract handle(msg: ClientMessage, raw: string | Buffer): Promise<void>;

  /**
   * The rate check, at arrival: a message over the rate is refused before anything is parsed or
   * queued, with at most one `rate_limited` reply a second (replying to each would let a flood make
   * us write as fast as it sends).
   */
  admit(): boolean {
    if (this.limit.take()) return true;
    metrics.signalingErrors.inc({ code: "rate_limited" });
    if (!this.refusals.take()) this.flooding = true;
    const now = performance.now();
    if (now - this.lastLimitedReply >= 1000) {
      this.lastLimitedReply = now;
      this.send({ type: "error", code: "rate_limited", message: "too many messages; slow down (20/s)" });
    }
    return false;
  }

  /** One message, in order; `admitted`: the transport already ran admit() on it. */
  async receive(raw: string | Buffer, admitted = false): Promise<void> {
    if (!admitted && !this.admit()) return;
    try {
      await this.handle(parseClientMessage(raw, this.config.maxMessageBytes), raw);
    } catch (err) {
      this.refuse(err);
    }
  }

  /** The client's reply to a failed message; anything not meant for it is logged here, in full. */
  protected refuse(err: unknown): void {
    if (!(err instanceof ProtocolError)) log.error("signaling message failed", { participant: this.participantId, address: this.address, error: (err as Error).message, stack: (err as Error).stack });
    const e = err instanceof ProtocolError ? err : new ProtocolError("internal", "internal error");
    metrics.signalingErrors.inc({ code: e.code });
    this.logRejected(e);
    this.send({ type: "error", code: e.code, message: e.message });
  }

  private logRejected(e: ProtocolError): void {
    if (!this.logLimit.take()) {
      this.unlogged++;
      return;
    }
    const suppressed = this.unlogged ? { suppressed: this.unlogged } : {};
    this.unlogged = 0;
    log.info("signaling error", { code: e.code, message: e.message, participant: this.participantId, address: this.address, ...suppressed });
  }

  /** The server is going away: the client is told to reconnect (elsewhere) in a moment. */
  notifyShutdown(reconnectAfterMs: number): void {
    this.send({ type: "shutdown", reconnectAfterMs });
  }
}

/** The transport-independent half of a signaling session, served by this process's rooms. */
export class SignalingSession extends GuardedSession {
  private participant: Participant | undefined;
  private room: Room | undefined;
  private readonly onList = (state: RoomState) => this.send({ type: "participants", ...state });
  private readonly onSpeakers = (s: SpeakersState) => this.send({ type: "speakers", ...s });
  /** Told when this session takes a seat (participant and room) and when it loses it (undefined). */
  seatChanged?: (participant: string | undefined, room: string | undefined) => void;

  constructor(
    private readonly rooms: Rooms,
    config: Config,
    send: (m: ServerMessage) => void,
    address = "unknown",
    /** Recording as the page may start and stop it (none: refused). */
    private readonly recording?: RecordingControl,
  ) {
    super(config, send, address);
  }

  protected async handle(msg: ClientMessage): Promise<void> {
    switch (msg.type) {
      case "join":
        if (!(await this.join(msg.room, msg.name, msg.token))) return;
        if (msg.quality) this.participant?.setQuality(msg.quality);
        return;
      case "quality":
        this.requireParticipant("quality").setQuality(msg.quality);
        return;
      case "offer": {
        const p = this.requireParticipant("offer");
        const answered = await this.rooms.offers.run(() => p.handleOffer(msg.sdp)).catch((err) => {
          if (err instanceof ProtocolError) throw err;
          throw new ProtocolError("bad_offer", `could not answer the offer: ${(err as Error).message}`);
        });
        if (!answered) throw new ProtocolError("busy", "the server is answering too many offers; try again in a moment");
        this.send({ type: "answer", sdp: answered.value });
        return;
      }
      case "candidate": {
        const p = this.requireParticipant("candidate");
        try {
          p.addCandidate(msg.candidate); // not awaited: a slow candidate must not hold up the next message
        } catch (err) {
          throw new ProtocolError("invalid_message", `candidate rejected: ${(err as Error).message}`);
        }
        return;
      }
      case "media": {
        this.requireParticipant("media").setMedia(msg.audio, msg.video);
        return;
      }
      case "record": {
        const p = this.requireParticipant("record");
        const control = this.recording;
        if (!this.config.clientRecording || !control) {
          throw new ProtocolError("forbidden", "recording from the page is turned off on this server (CLIENT_RECORDING=off)");
        }
        if (!p.can("record")) throw new ProtocolError("forbidden", "your token does not allow recording");
        try {
          await (msg.on ? control.start(this.room!.id) : control.stop(this.room!.id));
        } catch (err) {
          throw new ProtocolError("recording_refused", (err as Error).message);
        }
        return; // everyone hears of it in the next `participants`
      }
      case "moderate":
        return this.moderate(msg);
      case "leave": {
        this.requireParticipant("leave");
        this.leave();
        return;
      }
    }
  }

  /** Seats the client here (true), or tells it which node holds the room (false: a `redirect`). */
  private async join(roomId: string, name: string, token: string | undefined): Promise<boolean> {
    if (this.participant) throw new ProtocolError("already_joined", `already joined room "${this.room?.id}"; send leave first`);
    const grant = await checkJoinToken(this.config, this.rooms.revocations, roomId, token);
    if (this.participant) throw new ProtocolError("already_joined", "already joined");
    name = grant.name ?? name;
    const cluster = this.rooms.cluster;
    if (cluster && !(await placeJoin(cluster, this.rooms.get(roomId) !== undefined, this.address, roomId, this.send))) return false;
    if (this.participant) throw new ProtocolError("already_joined", "already joined");
    let p: Participant;
    try {
      p = this.rooms.join(roomId, name, this.address, grant.seat);
    } catch (err) {
      if (err instanceof AdmissionError) throw new ProtocolError(err.code, err.message);
      throw err;
    }
    const room = this.rooms.get(roomId)!;
    this.participant = p;
    this.room = room;
    this.seatChanged?.(p.id, room.id);
    p.on("candidate", (candidate) => this.send({ type: "candidate", candidate }));
    p.on("moderated", (audio, video) => this.send({ type: "moderated", audio, video }));
    p.once("close", (reason, detail) => {
      const notice = closeNotice(reason, detail);
      if (notice) this.send(notice);
      this.detach();
    });
    this.send({
      type: "joined",
      participantId: p.id,
      room: room.id,
      name: p.name,
      iceServers: iceServersFor(p.id, this.config),
      canRecord: this.config.clientRecording && p.can("record"),
      rights: this.config.authSecret ? p.rights : OPEN_RIGHTS,
    });
    room.on("participants", this.onList);
    room.on("speakers", this.onSpeakers);
    this.send({ type: "participants", ...room.state() });
    return true;
  }

  private moderate(msg: ModerateMessage): void {
    const p = this.requireParticipant("moderate");
    if (!p.can("moderate")) throw new ProtocolError("forbidden", "moderation needs a token with the moderate right");
    const room = this.room!;
    log.info("moderation", { room: room.id, by: p.id, action: msg.action, target: "participant" in msg ? msg.participant : undefined });
    if (msg.action === "end") return room.end(msg.reason);
    if (msg.action === "layout") {
      const err = room.setLayout(msg.layout, msg.participant);
      if (err) throw new ProtocolError(err.code, err.message);
      return;
    }
    const done = msg.action === "kick" ? room.kick(msg.participant, msg.reason) : room.moderate(msg.participant, msg.audio, msg.video);
    if (!done) throw new ProtocolError("unknown_participant", `no participant "${msg.participant}" in this room`);
  }

  get participantId(): string | undefined {
    return this.participant?.id;
  }

  private requireParticipant(type: string): Participant {
    if (!this.participant) throw new ProtocolError("not_joined", `"${type}" before "join"`);
    return this.participant;
  }

  private detach(): void {
    if (this.participant) this.seatChanged?.(undefined, undefined);
    this.room?.off("participants", this.onList);
    this.room?.off("speakers", this.onSpeakers);
    this.participant = undefined;
    this.room = undefined;
  }

  /** The client left or its transport went away: the participant leaves its room. */
  leave(reason: CloseReason = "left"): void {
    const p = this.participant;
    this.detach();
    p?.close(reason);
  }
}
