// One person's call: local media, signaling, the RTCPeerConnection to the server, the chat
// data channel, and reconnecting (new transport, new peer) after a drop — same room, same name.
import type { ParticipantInfo, RoomLayout, ServerMessage } from "../../server/protocol.ts";
import { connectLongPoll, connectWebSocket, type Transport } from "./transport.ts";

// The protocol's types come from the server's own module (type-only: nothing of it is bundled).
export type { ParticipantInfo as Participant, RoomLayout } from "../../server/protocol.ts";
export type LayoutKind = RoomLayout["layout"];
export type RecordingInfo = NonNullable<Extract<ServerMessage, { type: "participants" }>["recording"]>;

export interface CallOptions {
  room: string;
  name: string;
  transport: "auto" | "longpoll";
  iceTransportPolicy: RTCIceTransportPolicy;
  /** Browser audio processing (echo cancellation etc.); tests turn it off to hear pure tones. */
  audioProcessing: boolean;
  /** "watch": join as a viewer without asking for camera or microphone. */
  mode: "call" | "watch";
  /** A room token (`?token=`), where the server needs one. */
  token?: string;
  /** Only this video codec (`?codec=h264`: a device that decodes H.264 in hardware), else the server's choice. */
  videoCodec?: "h264" | "vp8";
  /** Which rung of the composite: auto (follow the link), high, low (data saver). */
  quality: Quality;
}

export type Quality = "auto" | "high" | "low";

export interface CallEvents {
  state(text: string): void;
  error(text: string): void;
  participants(list: ParticipantInfo[], layout: RoomLayout): void;
  /** Who speaks now, and who the speaker view shows large. */
  speakers(speaking: string[], activeSpeaker: string | null): void;
  /** The room is being recorded (info) or not (null); canRecord: this page may start/stop it. */
  recording(info: RecordingInfo | null, canRecord: boolean): void;
  chat(msg: { from: string; name: string; text: string; ts: number }): void;
  /** The composite stream (video + mix-minus audio) to play. */
  stream(s: MediaStream): void;
  /** What this page sends, and in plain words why something is missing ("" when all is there). */
  devices(has: { audio: boolean; video: boolean }, notice: string, canRetry: boolean): void;
}

/** In plain words: what is missing and why (failures: the getUserMedia error names seen). */
function devicesNotice(has: { audio: boolean; video: boolean }, failures: string[]): string {
  if (has.audio && has.video) return "";
  const denied = failures.some((n) => n === "NotAllowedError" || n === "SecurityError");
  const none = !has.audio && !has.video;
  const missing = has.audio ? "camera" : has.video ? "microphone" : denied ? "camera and microphone" : "camera or microphone";
  const why = denied ? `Access to your ${missing} was not allowed` : `No ${missing} could be opened`;
  const so = none ? "you are watching and listening only." : has.audio ? "you joined with your microphone only." : "you joined with your camera only.";
  return `${why}, so ${so}`;
}

const PLAIN_ERRORS: Record<string, string> = {
  room_full: "This room is full. Try again later or pick another room.",
  server_full: "The server is full right now. Try again in a few minutes.",
  server_busy: "The server is very busy just now; trying again…",
  too_many_joins: "Too many calls from your network are on this server right now.",
  unauthorized: "This invitation link is missing, expired or not valid. Ask for a new one.",
  not_joined: "The server lost track of this call; reconnecting.",
  cluster_unavailable: "The servers are reorganising; reconnecting…",
  cluster_full: "Every server is full right now; trying again…",
};
/** Errors after which trying again with the same link cannot help: the page stops reconnecting. */
const FINAL_ERRORS = new Set(["unauthorized", "room_full", "server_full", "too_many_joins"]);
/** Errors after which a fresh join soon may work. */
const RETRY_ERRORS = new Set(["busy", "server_busy", "offer_timeout", "rate_limited", "cluster_unavailable", "cluster_full"]);
/** Redirects followed in a row before the page goes back to its own address. */
const MAX_REDIRECTS = 3;

export class Call {
  transport: Transport | undefined;
  pc: RTCPeerConnection | undefined;
  local: MediaStream | undefined;
  participantId = "";
  micOn = true;
  camOn = true;
  canRecord = false;
  /** What this participant may do (from `joined`). */
  rights: string[] = [];
  recording: RecordingInfo | null = null;
  private chat: RTCDataChannel | undefined;
  private senders: Partial<Record<"audio" | "video", RTCRtpSender>> = {};
  private leaving = false;
  private retry = 0;
  private reconnectTimer: number | undefined;
  /** The server asked for this pause before reconnecting (shutdown). */
  private nextDelayMs: number | undefined;
  /** The node a `redirect` sent us to (several nodes); undefined = this page's own address, which routes us. */
  private node: string | undefined;
  private redirects = 0;

  constructor(private readonly o: CallOptions, private readonly ev: CallEvents) {}

  async start(): Promise<void> {
    await this.openDevices();
    await this.connect();
  }

  /**
   * Opens what this device has: camera + mic, else either alone, else nothing (a viewer). A denied
   * permission is treated like a missing device, with a notice saying so and a way to try again.
   */
  private async openDevices(): Promise<void> {
    const tracks: MediaStreamTrack[] = [];
    const failures: string[] = [];
    if (this.o.mode === "call") {
      try {
        tracks.push(...(await navigator.mediaDevices.getUserMedia(this.constraints())).getTracks());
      } catch (both) {
        failures.push((both as DOMException).name);
        for (const kind of ["audio", "video"] as const) {
          try {
            tracks.push(...(await navigator.mediaDevices.getUserMedia({ [kind]: this.constraints()[kind] })).getTracks());
          } catch (one) {
            failures.push((one as DOMException).name);
          }
        }
      }
    }
    this.local = new MediaStream(tracks);
    const has = { audio: tracks.some((t) => t.kind === "audio"), video: tracks.some((t) => t.kind === "video") };
    this.ev.devices(has, this.o.mode === "watch" ? "" : devicesNotice(has, failures), this.o.mode === "call" && !(has.audio && has.video));
  }

  /** Asks for camera and mic again (after the user fixed permissions or plugged one in); rejoins with what it gets. */
  async retryDevices(): Promise<void> {
    const before = this.local?.getTracks().map((t) => t.kind).sort().join();
    for (const t of this.local?.getTracks() ?? []) t.stop();
    await this.openDevices();
    if (this.local?.getTracks().map((t) => t.kind).sort().join() === before) return;
    // What we send changed: a fresh peer connection under a fresh join (the server fixes tiles and decoders at the offer).
    this.transport?.send({ type: "leave" });
    this.transport?.close();
    this.transport = undefined;
    this.pc?.close();
    this.pc = undefined;
    await this.connect();
  }

  private constraints(mic?: string, cam?: string): MediaStreamConstraints {
    const p = this.o.audioProcessing;
    return {
      audio: { deviceId: mic ? { exact: mic } : undefined, echoCancellation: p, noiseSuppression: p, autoGainControl: p },
      video: { deviceId: cam ? { exact: cam } : undefined, width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 30 } },
    };
  }

  private async connect(): Promise<void> {
    this.ev.state("connecting");
    const events = { onMessage: (m: ServerMessage) => void this.onMessage(m), onDrop: (r: string) => this.dropped(r) };
    try {
      const node = this.node;
      this.transport = this.o.transport === "longpoll" ? await connectLongPoll(events, node) : await connectWebSocket(events, 4000, node).catch(() => connectLongPoll(events, node));
    } catch {
      this.ev.error("Cannot reach the server. Retrying…");
      this.node = undefined; // a node we were sent to may be gone: ask this page's address again
      return this.scheduleReconnect();
    }
    this.ev.error("");
    this.joinSentAt = performance.now();
    this.transport.send({ type: "join", room: this.o.room, name: this.o.name, quality: this.o.quality, ...(this.o.token ? { token: this.o.token } : {}) });
  }

  /** When the last join went out (performance.now() ms), and how long after it the first composite frame showed. */
  joinSentAt: number | undefined;
  firstFrameMs: number | undefined;

  private async onMessage(m: ServerMessage): Promise<void> {
    switch (m.type) {
      case "redirect":
        // The room lives on another node: the same join there, at once (nothing was joined here).
        this.transport?.close();
        this.transport = undefined;
        if (++this.redirects > MAX_REDIRECTS) return this.dropped("too many redirects");
        this.node = m.url;
        return this.connect();
      case "joined":
        this.retry = 0;
        this.redirects = 0;
        this.participantId = m.participantId;
        this.canRecord = m.canRecord === true;
        this.rights = m.rights ?? [];
        if (!this.rights.includes("publish") && this.local?.getTracks().length) this.watchOnly("Your invitation lets you watch and listen only.");
        await this.negotiate(m.iceServers);
        if (!this.micOn || !this.camOn) this.transport?.send({ type: "media", audio: this.micOn, video: this.camOn });
        return;
      case "answer":
        await this.pc?.setRemoteDescription({ type: "answer", sdp: m.sdp });
        return;
      case "candidate":
        if (m.candidate) await this.pc?.addIceCandidate(m.candidate).catch(() => {});
        return;
      case "participants":
        this.ev.participants(m.participants, { layout: m.layout ?? "grid", pinned: m.pinned ?? null, activeSpeaker: m.activeSpeaker ?? null });
        this.recording = m.recording ?? null;
        this.ev.recording(this.recording, this.canRecord);
        // Our own tile (it follows the layout: large when we are the speaker), else the room's grid tile.
        const tile = m.participants.find((p) => p.id === this.participantId)?.tile ?? m.tile;
        if (tile) void this.fitToTile(tile.width, tile.height);
        return;
      case "speakers":
        this.ev.speakers(m.speaking ?? [], m.activeSpeaker ?? null);
        return;
      case "error":
        this.ev.error(PLAIN_ERRORS[m.code] ?? `Server: ${m.message}`);
        if (FINAL_ERRORS.has(m.code) && !this.participantId) this.stop();
        else if (RETRY_ERRORS.has(m.code) && m.code !== "rate_limited") this.dropped(m.code);
        return;
      case "kicked":
        this.stop();
        this.ev.error(`You were removed from the room: ${m.reason}.`);
        return;
      case "room_ended":
        this.stop();
        this.ev.error(`The room has ended: ${m.reason}.`);
        return;
      case "moderated": {
        const off = [m.audio && "microphone", m.video && "camera"].filter(Boolean).join(" and ");
        this.ev.error(off ? `A moderator turned off your ${off} for the others.` : "");
        return;
      }
      case "shutdown":
        // The connection closes next; reconnect (to this address, maybe another node) after the pause.
        this.ev.error("The server is restarting; reconnecting…");
        this.retry = 0;
        this.nextDelayMs = m.reconnectAfterMs;
        return;
    }
  }

  /** Data saver on (the lowest rung) or off (follow the link); kept across reconnects. */
  setQuality(q: Quality): void {
    this.o.quality = q;
    this.transport?.send({ type: "quality", quality: q });
  }

  /** Asks to start or stop the room's recording; everyone, this page included, hears of it in `participants`. */
  setRecording(on: boolean): void {
    this.transport?.send({ type: "record", on });
  }

  private async negotiate(iceServers: RTCIceServer[]): Promise<void> {
    this.pc?.close();
    const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: this.o.iceTransportPolicy, bundlePolicy: "max-bundle" });
    this.pc = pc;
    const early: ({ candidate: string } | null)[] = [];
    let offerSent = false;
    pc.onicecandidate = (e) => {
      // null: the end of candidates; a browser may give an init without the candidate string.
      const c = e.candidate ? { ...e.candidate.toJSON(), candidate: e.candidate.candidate } : null;
      if (offerSent) this.transport?.send({ type: "candidate", candidate: c });
      else early.push(c);
    };
    pc.onconnectionstatechange = () => {
      this.ev.state(pc.connectionState);
      if (pc === this.pc && pc.connectionState === "failed") this.dropped("media connection failed");
    };
    const remote = new MediaStream();
    pc.ontrack = (e) => {
      remote.addTrack(e.track);
      this.ev.stream(remote);
    };
    this.senders = {};
    for (const kind of ["audio", "video"] as const) {
      const t = this.local!.getTracks().find((x) => x.kind === kind);
      // Without that device we only receive: the server then spends no decoder on it.
      if (!t) {
        pc.addTransceiver(kind, { direction: "recvonly" });
        continue;
      }
      this.senders[kind] = pc.addTrack(t, this.local!);
      // A muted mic / camera off sends nothing at all (not silence or black frames).
      if (!(kind === "audio" ? this.micOn : this.camOn)) void this.senders[kind]!.replaceTrack(null);
    }
    if (this.o.videoCodec) this.preferCodec(pc, this.o.videoCodec);
    this.chat = pc.createDataChannel("chat");
    this.chat.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.type === "chat") this.ev.chat(msg);
      else if (msg.type === "error") this.ev.error(`Chat: ${msg.message}`);
    };
    await pc.setLocalDescription(await pc.createOffer());
    this.transport?.send({ type: "offer", sdp: pc.localDescription!.sdp });
    offerSent = true;
    for (const c of early) this.transport?.send({ type: "candidate", candidate: c });
  }

  /** Offers only `codec` for video (both ways: the composite we get and the camera we send). */
  private preferCodec(pc: RTCPeerConnection, codec: string): void {
    const t = pc.getTransceivers().find((x) => x.receiver.track.kind === "video");
    const caps = RTCRtpReceiver.getCapabilities("video")?.codecs ?? [];
    const want = caps.filter((c) => c.mimeType.toLowerCase() === `video/${codec}`);
    if (t && want.length) t.setCodecPreferences(want);
  }

  /** Sends no more pixels than our tile shows: saves this device's encoder and the server's decoder. */
  private async fitToTile(w: number, h: number): Promise<void> {
    const sender = this.senders.video;
    const settings = this.local?.getVideoTracks()[0]?.getSettings();
    if (!sender || !settings?.width || !settings.height) return;
    // The server letterboxes into the tile, so the picture it shows is at most the tile's size.
    const scale = Math.max(1, settings.width / w, settings.height / h);
    const params = sender.getParameters();
    if (!params.encodings?.length) return; // not negotiated yet; the next list update retries
    if (params.encodings[0].scaleResolutionDownBy === scale) return;
    params.encodings[0].scaleResolutionDownBy = scale;
    await sender.setParameters(params).catch(() => {});
  }

  sendChat(text: string): boolean {
    if (this.chat?.readyState !== "open" || !text.trim()) return false;
    this.chat.send(JSON.stringify({ text }));
    return true;
  }

  /** Mute/unmute: the track stops sending (no RTP at all), and the server is told at once. */
  async setMic(on: boolean): Promise<void> {
    this.micOn = on;
    await this.setSending("audio", on);
  }

  async setCamera(on: boolean): Promise<void> {
    this.camOn = on;
    await this.setSending("video", on);
  }

  private async setSending(kind: "audio" | "video", on: boolean): Promise<void> {
    const track = this.local?.getTracks().find((t) => t.kind === kind) ?? null;
    await this.senders[kind]?.replaceTrack(on ? track : null);
    this.transport?.send({ type: "media", audio: this.micOn, video: this.camOn });
  }

  /** Switches camera or microphone to another device without renegotiating. */
  async useDevice(kind: "audio" | "video", deviceId: string): Promise<void> {
    const c = kind === "audio" ? { audio: this.constraints(deviceId).audio } : { video: this.constraints(undefined, deviceId).video };
    const track = (await navigator.mediaDevices.getUserMedia(c)).getTracks()[0];
    const old = this.local?.getTracks().find((t) => t.kind === kind);
    if (old) {
      this.local!.removeTrack(old);
      old.stop();
    }
    this.local!.addTrack(track);
    if (kind === "audio" ? this.micOn : this.camOn) await this.senders[kind]?.replaceTrack(track);
  }

  private dropped(reason: string): void {
    if (this.leaving) return;
    this.ev.state(`reconnecting (${reason})`);
    // Back through this page's own address: if the node we were on died, the room is placed anew.
    this.node = undefined;
    this.redirects = 0;
    this.transport?.close();
    this.transport = undefined;
    this.pc?.close();
    this.pc = undefined;
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.leaving || this.reconnectTimer !== undefined) return;
    const delay = this.nextDelayMs ?? Math.min(5000, 500 * 2 ** this.retry++);
    this.nextDelayMs = undefined;
    this.reconnectTimer = window.setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.connect();
    }, delay);
  }

  /** The token may not publish: drop camera and mic before the offer, and say so. */
  private watchOnly(notice: string): void {
    for (const t of this.local?.getTracks() ?? []) t.stop();
    this.local = new MediaStream();
    this.ev.devices({ audio: false, video: false }, notice, false);
  }

  /** Moderation (holders of the `moderate` right): kick or mute someone, or end the room. */
  /** A moderator sets the room's layout (pinned: `participant` large). */
  setLayout(layout: LayoutKind, participant?: string): void {
    this.transport?.send({ type: "moderate", action: "layout", layout, participant });
  }

  moderate(action: "end"): void;
  moderate(action: "kick", participant: string): void;
  moderate(action: "mute", participant: string, muted: boolean): void;
  moderate(action: "kick" | "mute" | "end", participant = "", muted = false): void {
    this.transport?.send(
      action === "end" ? { type: "moderate", action }
      : action === "kick" ? { type: "moderate", action, participant }
      : { type: "moderate", action, participant, audio: muted, video: muted },
    );
  }

  /** The server ended this call (kicked, room ended, refused): no reconnecting. */
  private stop(): void {
    this.leaving = true;
    clearTimeout(this.reconnectTimer);
    this.transport?.close();
    this.pc?.close();
    for (const t of this.local?.getTracks() ?? []) t.stop();
    this.ev.state("ended");
  }

  leave(): void {
    this.leaving = true;
    clearTimeout(this.reconnectTimer);
    this.transport?.send({ type: "leave" });
    this.transport?.close();
    this.pc?.close();
    for (const t of this.local?.getTracks() ?? []) t.stop();
    this.ev.state("left");
  }
}
