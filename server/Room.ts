// A room owns its participants and its mixer. The mixer starts with the first participant;
// when the last one leaves the room closes it (no ffmpeg child, timer or socket left).
import { EventEmitter } from "node:events";
import { gridLayout } from "../mixer/layout.ts";
import { Mixer } from "../mixer/Mixer.ts";
import type { Config } from "./config.ts";
import { logger } from "./log.ts";
import { metrics } from "./metrics.ts";
import { Participant, type CloseReason } from "./Participant.ts";
import type { ParticipantInfo } from "./protocol.ts";

const log = logger("room");

export class RoomFullError extends Error {}

export interface RoomState {
  participants: ParticipantInfo[];
  /** Size of every tile in the current grid: clients need not send more pixels than this. */
  tile: { width: number; height: number };
  /** Set while the room is being recorded: everyone is shown that. */
  recording: RecordingInfo | null;
}

export interface RecordingInfo {
  id: string;
  startedAt: string;
}

export class Room extends EventEmitter<{
  participants: [RoomState];
  empty: [];
  joined: [id: string, name: string];
  left: [id: string, name: string];
}> {
  private readonly participants = new Map<string, Participant>();
  private mixer: Mixer | undefined;
  private nextId = 1;
  private recording: RecordingInfo | null = null;

  constructor(
    readonly id: string,
    private readonly config: Config,
  ) {
    super();
    // One "participants" listener per signaling session: a full room is not a leak.
    this.setMaxListeners(config.maxParticipants + 10);
  }

  get size(): number {
    return this.participants.size;
  }

  get currentMixer(): Mixer | undefined {
    return this.mixer;
  }

  join(name: string): Participant {
    if (this.participants.size >= this.config.maxParticipants) {
      throw new RoomFullError(`room "${this.id}" is full (${this.config.maxParticipants} participants)`);
    }
    this.mixer ??= new Mixer({
      ffmpegPath: this.config.ffmpegPath,
      width: this.config.width,
      height: this.config.height,
      fps: this.config.fps,
      kbps: this.config.videoKbps,
      audioKbps: this.config.audioKbps,
      keyframeIntervalS: this.config.keyframeIntervalS,
      keyframeMinIntervalMs: this.config.keyframeMinIntervalMs,
      stallTimeoutMs: this.config.stallTimeoutMs,
    });
    const id = `${this.id}-${this.nextId++}-${Math.random().toString(36).slice(2, 8)}`;
    const p = new Participant(id, name, this.mixer, this.config);
    this.participants.set(id, p);
    this.mixer.add(id, name, p.sink);
    p.once("close", (reason) => this.onParticipantClosed(p, reason));
    p.on("media", () => this.broadcastList());
    p.on("chat", (text) => {
      const msg = { type: "chat" as const, from: p.id, name: p.name, text, ts: Date.now() };
      for (const other of this.participants.values()) other.sendChat(msg);
    });
    metrics.participants.inc({}, 1);
    log.info("participant joined", { room: this.id, participant: id, name, size: this.participants.size });
    this.emit("joined", id, name);
    this.broadcastList();
    return p;
  }

  private onParticipantClosed(p: Participant, reason: CloseReason): void {
    if (!this.participants.delete(p.id)) return;
    metrics.participants.inc({}, -1);
    this.mixer?.remove(p.id);
    log.info("participant left", { room: this.id, participant: p.id, reason, size: this.participants.size });
    this.emit("left", p.id, p.name);
    if (this.participants.size === 0) {
      this.mixer?.close();
      this.mixer = undefined;
      this.emit("empty");
    } else {
      this.broadcastList();
    }
  }

  list(): ParticipantInfo[] {
    return [...this.participants.values()].map((p) => ({ id: p.id, name: p.name, audio: p.audio, video: p.video }));
  }

  state(): RoomState {
    const t = gridLayout(Math.max(1, this.participants.size), this.config.width, this.config.height)[0];
    return { participants: this.list(), tile: { width: t.w, height: t.h }, recording: this.recording };
  }

  /** The room's recording started (info) or ended (null): everyone in the room is told. */
  setRecording(info: RecordingInfo | null): void {
    this.recording = info;
    if (this.participants.size) this.broadcastList();
  }

  private broadcastList(): void {
    this.emit("participants", this.state());
  }

  close(): void {
    for (const p of [...this.participants.values()]) p.close("room-closed");
    this.mixer?.close();
    this.mixer = undefined;
  }
}
