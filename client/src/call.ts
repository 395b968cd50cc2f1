// One person's call: local media, signaling, the RTCPeerConnection to the server, the chat
// data channel, and reconnecting (new transport, new peer) after a drop — same room, same name.
import { connectLongPoll, connectWebSocket, type Transport } from "./transport.ts";

export interface Participant {
  id: string;
  name: string;
  audio: boolean;
  video: boolean;
}

export interface RecordingInfo {
  id: string;
  startedAt: string;
}

export interface CallOptions {
  room: string;
  name: string;
  transport: "auto" | "longpoll";
  iceTransportPolicy: RTCIceTransportPolicy;
  /** Browser audio processing (echo cancellation etc.); tests turn it off to hear pure tones. */
  audioProcessing: boolean;
}

export interface CallEvents {
  state(text: string): void;
  error(text: string): void;
  participants(list: Participant[]): void;
  /** The room is being recorded (info) or not (null); canRecord: this page may start/stop it. */
  recording(info: RecordingInfo | null, canRecord: boolean): void;
  chat(msg: { from: string; name: string; text: string; ts: number }): void;
  /** The composite stream (video + mix-minus audio) to play. */
  stream(s: MediaStream): void;
}

const PLAIN_ERRORS: Record<string, string> = {
  forbidden: "Recording from this page is turned off on this server.",
  room_full: "This room is full. Try again later or pick another room.",
  not_joined: "The server lost track of this call; reconnecting.",
};

export class Call {
  transport: Transport | undefined;
  pc: RTCPeerConnection | undefined;
  local: MediaStream | undefined;
  participantId = "";
  micOn = true;
  camOn = true;
  canRecord = false;
  recording: RecordingInfo | null = null;
  private chat: RTCDataChannel | undefined;
  private senders: Partial<Record<"audio" | "video", RTCRtpSender>> = {};
  private leaving = false;
  private retry = 0;
  private reconnectTimer: number | undefined;

  constructor(private readonly o: CallOptions, private readonly ev: CallEvents) {}

  async start(): Promise<void> {
    try {
      this.local = await navigator.mediaDevices.getUserMedia(this.constraints());
    } catch (e) {
      const name = (e as DOMException).name;
      this.ev.error(
        name === "NotAllowedError" ? "Camera and microphone access was denied. Allow it in the browser's site settings and reload."
        : name === "NotFoundError" ? "No camera or microphone was found."
        : `Could not open camera or microphone (${(e as Error).message}).`,
      );
      return;
    }
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
    const events = { onMessage: (m: any) => void this.onMessage(m), onDrop: (r: string) => this.dropped(r) };
    try {
      this.transport = this.o.transport === "longpoll" ? await connectLongPoll(events) : await connectWebSocket(events, 4000).catch(() => connectLongPoll(events));
    } catch {
      this.ev.error("Cannot reach the server. Retrying…");
      return this.scheduleReconnect();
    }
    this.ev.error("");
    this.transport.send({ type: "join", room: this.o.room, name: this.o.name });
  }

  private async onMessage(m: any): Promise<void> {
    switch (m.type) {
      case "joined":
        this.retry = 0;
        this.participantId = m.participantId;
        this.canRecord = m.canRecord === true;
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
        this.ev.participants(m.participants);
        this.recording = m.recording ?? null;
        this.ev.recording(this.recording, this.canRecord);
        if (m.tile) void this.fitToTile(m.tile.width, m.tile.height);
        return;
      case "error":
        this.ev.error(PLAIN_ERRORS[m.code] ?? `Server: ${m.message}`);
        return;
    }
  }

  /** Asks to start or stop the room's recording; everyone, this page included, hears of it in `participants`. */
  setRecording(on: boolean): void {
    this.transport?.send({ type: "record", on });
  }

  private async negotiate(iceServers: RTCIceServer[]): Promise<void> {
    this.pc?.close();
    const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: this.o.iceTransportPolicy, bundlePolicy: "max-bundle" });
    this.pc = pc;
    const early: (RTCIceCandidateInit | null)[] = [];
    let offerSent = false;
    pc.onicecandidate = (e) => {
      const c = e.candidate ? e.candidate.toJSON() : null;
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
    for (const t of this.local!.getTracks()) {
      const kind = t.kind as "audio" | "video";
      this.senders[kind] = pc.addTrack(t, this.local!);
      // A muted mic / camera off sends nothing at all (not silence or black frames).
      if (!(kind === "audio" ? this.micOn : this.camOn)) void this.senders[kind]!.replaceTrack(null);
    }
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
    this.transport?.close();
    this.transport = undefined;
    this.pc?.close();
    this.pc = undefined;
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.leaving || this.reconnectTimer !== undefined) return;
    const delay = Math.min(5000, 500 * 2 ** this.retry++);
    this.reconnectTimer = window.setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.connect();
    }, delay);
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
