// A room owns its participants and its mixer. The mixer starts with the first accepted offer
// (a join alone costs no media); when the last participant leaves the room closes it (no ffmpeg
// child, timer or socket left). Moderation (kick, mute in the mix, end) acts here.
import type { IngressBudgets } from "./iceGate.ts";
import type { DecodeBudgets } from "../mixer/decodeBudget.ts";
import { EventEmitter } from "node:events";
import { gridLayout, type LayoutKind } from "../mixer/layout.ts";
import { Mixer, type MixerSeat } from "../mixer/Mixer.ts";
import { AdmissionError } from "./admission.ts";
import type { Config } from "./config.ts";
import { logger } from "../telemetry/log.ts";
import { metrics } from "../telemetry/metrics.ts";
import { Participant, type CloseReason, type Right } from "./Participant.ts";
import { VOICE_DEFAULTS } from "../mixer/voiceActivity.ts";
import type { ParticipantInfo, RoomLayout } from "./protocol.ts";
import type { OfferedMedia } from "./sdp.ts";

const log = logger("room");
/** Participant lists go out at most this often per room: a burst of changes is one message. */
const LIST_INTERVAL_MS = 200;
const LAYOUT_INTERVAL_MS = 1000;

interface RoomStateBase {
  participants: ParticipantInfo[];
  /** Size of every tile in the current grid: clients need not send more pixels than this. */
  tile: { width: number; height: number };
  /** Set while the room is being recorded: everyone is shown that. */
  recording: RecordingInfo | null;
}

export type RoomState = RoomStateBase & RoomLayout;

/** Who speaks now and who the speaker view shows large: sent on its own, as it changes often. */
export interface SpeakersState {
  speaking: string[];
  activeSpeaker: string | null;
}

export interface RecordingInfo {
  id: string;
  startedAt: string;
}

/** Who takes the seat: from a room token where the server has AUTH_SECRET, else open defaults. */
export interface SeatOptions {
  rights?: Right[];
  /** The token's id: a kicked token cannot rejoin this room. */
  tokenId?: string;
  /** The client's address: its camera's decode budget is shared with others from there. */
  address?: string;
}

export class Room extends EventEmitter<{
  participants: [RoomState];
  speakers: [SpeakersState];
  empty: [];
  joined: [id: string, name: string];
  left: [id: string, name: string];
}> {
  private readonly participants = new Map<string, Participant>();
  private mixer: Mixer | undefined;
  private closed = false;
  private nextId = 1;
  private recording: RecordingInfo | null = null;
  private readonly kickedTokens = new Set<string>();
  private listTimer: NodeJS.Timeout | undefined;
  private lastListAt = -Infinity;
  private closing = false;
  private layout: { kind: LayoutKind; pinned: string | undefined };

  constructor(
    readonly id: string,
    private readonly config: Config,
    /** The server's decode pools (per address, server-wide) and media bandwidth budgets; one per server. */
    private readonly decode?: DecodeBudgets,
    private readonly ingress?: IngressBudgets,
  ) {
    super();
    // One "participants" listener per signaling session: a full room is not a leak.
    this.setMaxListeners(config.maxParticipants + 10);
    this.layout = { kind: config.layout, pinned: undefined };
  }

  get size(): number {
    return this.participants.size;
  }

  get currentMixer(): Mixer | undefined {
    return this.mixer;
  }

  join(wanted: string, seat: SeatOptions = {}): Participant {
    if (this.closing) throw new AdmissionError("forbidden", `room "${this.id}" is closing`);
    if (seat.tokenId && this.kickedTokens.has(seat.tokenId)) throw new AdmissionError("forbidden", "you were removed from this room");
    if (this.participants.size >= this.config.maxParticipants) {
      throw new AdmissionError("room_full", `room "${this.id}" is full (${this.config.maxParticipants} participants)`);
    }
    const id = `${this.id}-${this.nextId++}-${Math.random().toString(36).slice(2, 8)}`;
    const p = new Participant(id, this.uniqueName(wanted), this.config, (sends) => this.admitMedia(p, sends), seat.rights);
    if (seat.tokenId) p.tokenId = seat.tokenId;
    p.address = seat.address ?? "unknown";
    p.ingress = this.ingress?.for(p.address);
    this.participants.set(id, p);
    p.once("close", (reason) => this.onParticipantClosed(p, reason));
    p.on("media", () => this.broadcastList());
    p.on("chat", (text) => {
      const msg = { type: "chat" as const, from: p.id, name: p.name, text, ts: Date.now() };
      for (const other of this.participants.values()) other.sendChat(msg);
    });
    metrics.participants.inc({}, 1);
    log.info("participant joined", { room: this.id, participant: id, name: p.name, size: this.participants.size });
    this.emit("joined", id, p.name);
    this.broadcastList();
    return p;
  }

  /** "Ada", then "Ada (2)", "Ada (3)": nobody in a room shares a name. */
  private uniqueName(wanted: string): string {
    const taken = new Set([...this.participants.values()].map((p) => p.name.toLowerCase()));
    if (!taken.has(wanted.toLowerCase())) return wanted;
    for (let k = 2; ; k++) {
      const candidate = `${wanted} (${k})`;
      if (!taken.has(candidate.toLowerCase())) return candidate;
    }
  }

  /**
   * The participant's offer was accepted: it enters the mix. It gets a tile if it sends anything
   * (a mic-only participant shows the placeholder with its name) and a decoder only for what it
   * sends; a viewer (everything recvonly) only listens and watches.
   */
  /** The server's overload policy caps the composite's frame rate (undefined: the configured rate). */
  setFrameRate(fps: number | undefined): void {
    this.fpsCap = fps;
    this.mixer?.setFrameRate(fps);
  }
  private fpsCap: number | undefined;

  private admitMedia(p: Participant, sends: OfferedMedia): MixerSeat {
    this.mixer ??= new Mixer({
      ffmpegPath: this.config.ffmpegPath,
      width: this.config.width,
      height: this.config.height,
      fps: this.config.fps,
      kbps: this.config.videoKbps,
      audioKbps: this.config.audioKbps,
      opusEngine: this.config.opusEngine,
      videoEngine: this.config.videoEngine,
      vp8CpuUsed: this.config.vp8CpuUsed,
      keyframeIntervalS: this.config.keyframeIntervalS,
      keyframeMinIntervalMs: this.config.keyframeMinIntervalMs,
      stallTimeoutMs: this.config.stallTimeoutMs,
      rungs: this.config.outputRungs,
      labels: this.config.labels,
      stillFps: this.config.stillFps,
      voice: { ...VOICE_DEFAULTS, floorHoldMs: this.config.speakerHoldMs, floorMinIntervalMs: this.config.speakerMinSwitchMs },
    });
    this.mixer.setLayout(this.layout.kind, this.layout.pinned);
    this.mixer.setFrameRate(this.fpsCap);
    this.mixer.onRungChange = () => this.broadcastList();
    // Speaking changes go out on their own (coalesced like lists); tile changes are in the list.
    this.mixer.onActivity = (what) => (what === "tiles" ? this.broadcastList() : this.broadcastSpeakers());
    // The participant holds its seat and announces itself ("media") once it does, so its list entry is whole.
    return this.mixer.add(p.id, p.name, p.sink, { audio: sends.audio, video: sends.video, codec: sends.receives ? p.codec : undefined, rung: p.startRung(),
      decodeGate: this.decode && (() => this.decode!.gate(p.address)),
    });
  }

  private onParticipantClosed(p: Participant, reason: CloseReason): void {
    if (!this.participants.delete(p.id)) return;
    metrics.participants.inc({}, -1);
    log.info("participant left", { room: this.id, participant: p.id, reason, size: this.participants.size });
    this.emit("left", p.id, p.name);
    if (this.participants.size === 0) {
      this.mixer?.close();
      this.mixer = undefined;
      clearTimeout(this.listTimer);
      clearTimeout(this.speakersTimer);
      clearTimeout(this.layoutTimer);
      this.emit("empty");
    } else {
      this.broadcastList();
    }
  }

  participant(id: string): Participant | undefined {
    return this.participants.get(id);
  }

  /** Removes a participant (it is told why); its token cannot rejoin this room. */
  kick(id: string, reason = "removed by a moderator"): boolean {
    const p = this.participants.get(id);
    if (!p) return false;
    if (p.tokenId) this.kickedTokens.add(p.tokenId);
    log.info("participant kicked", { room: this.id, participant: id, reason });
    p.close("kicked", reason);
    return true;
  }

  /** Removes everyone here who joined with this token (it was revoked); returns how many. */
  kickToken(tokenId: string, reason: string): number {
    let n = 0;
    for (const p of [...this.participants.values()]) if (p.tokenId === tokenId && this.kick(p.id, reason)) n++;
    return n;
  }

  /** Turns a participant's mic and/or camera off (true) or back on (false) in the mix; it is told. */
  moderate(id: string, audio: boolean | undefined, video: boolean | undefined): boolean {
    const p = this.participants.get(id);
    if (!p) return false;
    p.moderate(audio, video);
    return true;
  }

  /** Ends the room for everyone (each is told); the last one out closes the mixer and any recording. */
  end(reason = "the room was ended by a moderator"): void {
    this.closing = true;
    log.info("room ended", { room: this.id, reason });
    for (const p of [...this.participants.values()]) p.close("room-ended", reason);
  }

  /**
   * The room's layout from the next composite frame (and in its recording). `pinned` needs the
   * participant to pin; it stays pinned while in the room and the speaker view shows meanwhile.
   */
  setLayout(kind: LayoutKind, pinned?: string): { code: "unknown_participant" | "invalid_message"; message: string } | undefined {
    if (kind === "pinned") {
      if (!pinned) return { code: "invalid_message", message: "the pinned layout needs `participant`" };
      if (!this.participants.has(pinned)) return { code: "unknown_participant", message: `no participant "${pinned}" in this room` };
    }
    this.layout = { kind, pinned: kind === "pinned" ? pinned : undefined };
    log.info("layout", { room: this.id, layout: kind, pinned });
    this.applyLayoutSoon();
    return undefined;
  }

  private layoutTimer: NodeJS.Timeout | undefined;
  private layoutAppliedAt = -Infinity;

  /**
   * A layout change resizes tiles (a decoder start each): applied at most once a second per room, the
   * latest request winning, so a moderator (or a script) flipping layouts cannot make a spawn storm.
   */
  private applyLayoutSoon(): void {
    if (this.layoutTimer) return;
    const apply = () => {
      this.layoutTimer = undefined;
      this.layoutAppliedAt = performance.now();
      this.mixer?.setLayout(this.layout.kind, this.layout.pinned);
      this.broadcastList();
    };
    const wait = this.layoutAppliedAt + LAYOUT_INTERVAL_MS - performance.now();
    if (wait <= 0) return apply();
    this.layoutTimer = setTimeout(apply, wait);
  }

  list(): ParticipantInfo[] {
    return [...this.participants.values()].map((p) => p.info());
  }

  state(): RoomState {
    const tiles = [...this.participants.values()].filter((p) => p.sends && (p.sends.audio || p.sends.video)).length;
    const t = gridLayout(Math.max(1, tiles), this.config.width, this.config.height)[0];
    return {
      participants: this.list(), tile: { width: t.w, height: t.h }, recording: this.recording,
      layout: this.layout.kind, pinned: this.layout.pinned ?? null, activeSpeaker: this.mixer?.activeSpeaker ?? null,
    };
  }

  /** The room's recording started (info) or ended (null): everyone in the room is told. */
  setRecording(info: RecordingInfo | null): void {
    this.recording = info;
    if (this.participants.size) this.broadcastList();
  }

  private speakersTimer: NodeJS.Timeout | undefined;
  private lastSpeakersAt = -Infinity;

  /** Like the list: at once after a quiet spell, a burst becomes one message (at most 5 a second). */
  private broadcastSpeakers(): void {
    if (this.closing || this.speakersTimer) return;
    const send = () => {
      this.speakersTimer = undefined;
      this.lastSpeakersAt = performance.now();
      if (this.participants.size) this.emit("speakers", { speaking: this.mixer?.speaking ?? [], activeSpeaker: this.mixer?.activeSpeaker ?? null });
    };
    const wait = this.lastSpeakersAt + LIST_INTERVAL_MS - performance.now();
    if (wait <= 0) return send();
    this.speakersTimer = setTimeout(send, wait);
  }

  /** At once when the room has been quiet; a burst of changes becomes one list at the end of it. */
  private broadcastList(): void {
    if (this.closing || this.listTimer) return;
    const wait = this.lastListAt + LIST_INTERVAL_MS - performance.now();
    if (wait <= 0) return this.sendList();
    this.listTimer = setTimeout(() => this.sendList(), wait);
  }

  private sendList(): void {
    this.listTimer = undefined;
    this.lastListAt = performance.now();
    if (this.participants.size) this.emit("participants", this.state());
  }

  /**
   * The server closes the room: the mixer first (every seat with it), then each participant (its
   * client is told). Nothing echoes back: the room has let go of them, so their closing sends no
   * list, no "left", no "empty" (whoever closes a room knows it is gone).
   */
  close(): void {
    if (this.closed) return;
    this.closed = this.closing = true;
    clearTimeout(this.listTimer);
    clearTimeout(this.speakersTimer);
    clearTimeout(this.layoutTimer);
    const all = [...this.participants.values()];
    this.participants.clear();
    metrics.participants.inc({}, -all.length);
    this.mixer?.close();
    this.mixer = undefined;
    for (const p of all) p.close("room-closed");
  }
}
