// WebSocket signaling at /ws: one session per socket, every message parsed by the schema in
// protocol.ts. A bad message gets an `error` reply; the socket, the room and every other
// room keep going.
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import type { Config } from "./config.ts";
import { logger } from "./log.ts";
import { metrics } from "./metrics.ts";
import type { Participant } from "./Participant.ts";
import { parseClientMessage, ProtocolError, type ClientMessage, type ServerMessage } from "./protocol.ts";
import { TokenBucket } from "./rateLimit.ts";
import { RoomFullError, type Room, type RoomState } from "./Room.ts";
import type { Rooms } from "./Rooms.ts";
import { iceServersFor } from "./turn.ts";

const log = logger("signaling");
const IDLE_PING_MS = 15_000;

/** The transport-independent half of a signaling session (WebSocket today; long polling later). */
export class SignalingSession {
  private participant: Participant | undefined;
  private room: Room | undefined;
  private readonly onList = (state: RoomState) => this.send({ type: "participants", ...state });
  /** Signaling is a handful of messages per call; a flood is refused, not queued. */
  private readonly limit = new TokenBucket(20, 60);

  constructor(
    private readonly rooms: Rooms,
    private readonly config: Config,
    private readonly send: (m: ServerMessage) => void,
  ) {}

  async receive(raw: string | Buffer): Promise<void> {
    let msg: ClientMessage;
    try {
      if (!this.limit.take()) throw new ProtocolError("rate_limited", "too many messages; slow down");
      msg = parseClientMessage(raw, this.config.maxMessageBytes);
      await this.handle(msg);
    } catch (err) {
      const e = err instanceof ProtocolError ? err : new ProtocolError("internal", (err as Error).message);
      metrics.signalingErrors.inc({ code: e.code });
      log.info("signaling error", { code: e.code, message: e.message, participant: this.participant?.id });
      this.send({ type: "error", code: e.code, message: e.message });
    }
  }

  private async handle(msg: ClientMessage): Promise<void> {
    switch (msg.type) {
      case "join": {
        if (this.participant) throw new ProtocolError("already_joined", `already joined room "${this.room?.id}"; send leave first`);
        const room = this.rooms.getOrCreate(msg.room);
        let p: Participant;
        try {
          p = room.join(msg.name);
        } catch (err) {
          if (err instanceof RoomFullError) throw new ProtocolError("room_full", err.message);
          throw err;
        }
        this.participant = p;
        this.room = room;
        p.on("candidate", (candidate) => this.send({ type: "candidate", candidate }));
        p.once("close", () => this.detach());
        this.send({
          type: "joined",
          participantId: p.id,
          room: room.id,
          iceServers: iceServersFor(p.id, this.config),
          canRecord: this.config.clientRecording,
        });
        room.on("participants", this.onList);
        this.send({ type: "participants", ...room.state() });
        return;
      }
      case "offer": {
        const p = this.requireParticipant("offer");
        let sdp: string;
        try {
          sdp = await p.handleOffer(msg.sdp);
        } catch (err) {
          throw new ProtocolError("bad_offer", `could not answer the offer: ${(err as Error).message}`);
        }
        this.send({ type: "answer", sdp });
        return;
      }
      case "candidate": {
        const p = this.requireParticipant("candidate");
        try {
          await p.addCandidate(msg.candidate);
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
        this.requireParticipant("record");
        const control = this.rooms.recordingControl;
        if (!this.config.clientRecording || !control) {
          throw new ProtocolError("forbidden", "recording from the page is turned off on this server (CLIENT_RECORDING=off)");
        }
        try {
          await (msg.on ? control.start(this.room!.id) : control.stop(this.room!.id));
        } catch (err) {
          throw new ProtocolError("recording_refused", (err as Error).message);
        }
        return; // everyone hears of it in the next `participants`
      }
      case "leave": {
        this.requireParticipant("leave");
        this.leave();
        return;
      }
    }
  }

  get participantId(): string | undefined {
    return this.participant?.id;
  }

  private requireParticipant(type: string): Participant {
    if (!this.participant) throw new ProtocolError("not_joined", `"${type}" before "join"`);
    return this.participant;
  }

  private detach(): void {
    this.room?.off("participants", this.onList);
    this.participant = undefined;
    this.room = undefined;
  }

  /** The client left or its transport went away: the participant leaves its room. */
  leave(): void {
    const p = this.participant;
    this.detach();
    p?.close("left");
  }
}

export function attachWebSocketSignaling(rooms: Rooms, config: Config) {
  // Frames up to 4x the message cap are read so the client gets a `too_large` reply; beyond that ws closes (1009).
  const wss = new WebSocketServer({ noServer: true, maxPayload: config.maxMessageBytes * 4 });
  const sessions = new Map<WebSocket, SignalingSession>();
  wss.on("connection", (ws: WebSocket) => {
    const session = new SignalingSession(rooms, config, (m) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(m));
    });
    sessions.set(ws, session);
    // Messages are handled one at a time, in order (an offer's answer before later candidates).
    let chain = Promise.resolve();
    ws.on("message", (data, isBinary) => {
      const raw = isBinary ? Buffer.from(data as Buffer) : data.toString();
      chain = chain.then(() => session.receive(raw));
    });
    let alive = true;
    ws.on("pong", () => (alive = true));
    const ping = setInterval(() => {
      // A peer that vanished without closing (power loss, network gone) misses a pong: drop it.
      if (!alive) return ws.terminate();
      alive = false;
      ws.ping();
    }, IDLE_PING_MS);
    ws.on("close", () => {
      clearInterval(ping);
      sessions.delete(ws);
      chain = chain.then(() => session.leave());
    });
    ws.on("error", (err) => {
      // ws closes the socket itself on protocol violations (e.g. over maxPayload: close code 1009).
      metrics.signalingErrors.inc({ code: "transport" });
      log.info("websocket error", { error: err.message });
    });
  });
  return {
    handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
      const path = new URL(req.url ?? "/", "http://x").pathname;
      if (path !== "/ws") return false;
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
    close(): void {
      for (const c of wss.clients) c.terminate();
      wss.close();
    },
  };
}
