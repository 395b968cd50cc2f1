// A headless participant: joins through /ws like a browser (one offer with sendrecv camera +
// mic), sends fixture VP8 + Opus in real time, and decodes what it receives with ffmpeg so
// tests can read the composite's pixels and the mix's audio. The benchmark reuses it.
import fs from "node:fs";
import WebSocket from "ws";
import {
  H264Packetizer, MediaStreamTrack, OpusPacketizer, RTCPeerConnection, RtcpPayloadSpecificFeedback, Vp8Packetizer, useFIR, useH264, useNACK, useOPUS, usePLI, useVP8,
  type RTCDataChannel, type RTCRtpTransceiver, type RtcpPacket, type RtpPacket,
} from "werift";
import { MediaClock } from "../../mixer/clock.ts";
import { FfmpegProcess } from "../../mixer/FfmpegProcess.ts";
import { avccToAnnexB, FlvReader } from "../../mixer/flv.ts";
import { H264_FORMAT } from "../../mixer/h264Payload.ts";
import { IvfReader, ivfFileHeader, ivfFrame } from "../../mixer/ivf.ts";
import { OggOpusWriter, OggPacketReader, isOpusHeaderPacket } from "../../mixer/ogg.ts";
import { Vp8FrameAssembler } from "../../mixer/vp8FrameAssembler.ts";
import { loadConfig } from "../../server/config.ts";

export const VIEW_W = 320;
export const VIEW_H = 180;

export interface SyntheticOptions {
  url: string; // http://host:port of the server
  room: string;
  name: string;
  video: string; // IVF fixture path (FLV for videoCodec h264: h264FixturePath)
  /** Offer only this video codec (default vp8): its camera and the composite it gets both use it. */
  videoCodec?: "vp8" | "h264";
  audio: string; // Ogg Opus fixture path
  /** Decode what is received (pixels + audio). Off in the benchmark to keep client CPU low. */
  decode?: boolean;
  /** Fraction of outgoing video packets dropped (simulated lossy uplink). */
  videoLoss?: number;
  /** Send no audio at all (a listener who never speaks). */
  silent?: boolean;
  /** The Opus payload of its `index`th audio packet instead of the fixture's (e.g. a hostile sender's garbage). */
  audioPayload?: (index: number) => Buffer;
  /** Its camera's `index`th frame as sent (e.g. a hostile sender's mutated bitstream); the fixture's frame is given. */
  videoPayload?: (frame: Buffer, index: number) => Buffer;
  /**
   * Which devices it has (default both): a missing one is offered `recvonly`, like a browser without
   * that device; neither makes a viewer.
   */
  sends?: { audio: boolean; video: boolean };
  /**
   * Trickle as it gathers, ahead of the offer (as libdatachannel and others do), and send an offer
   * without a=candidate lines: the server has the candidates only from that early trickle.
   */
  trickleBeforeOffer?: boolean;
  /** Signaling from this local address (127.0.0.x: another client host, for per-address bounds). */
  localAddress?: string;
  /** Ignore PLIs (a hostile sender): keyframes come only where the file has them. */
  ignorePli?: boolean;
  /** A room token, for servers with AUTH_SECRET. */
  token?: string;
  /** Open the "chat" DataChannel in its offer, as the browser client does (`chatReceived`, `sendChat`). */
  chat?: boolean;
  /** The rung policy asked for in `join` (auto, high, low). */
  quality?: "auto" | "high" | "low";
  /**
   * The video / audio send clock's period is multiplied by this (default 1). E.g. 1.0015 sends
   * 0.15 % slow, like a device whose clock drifts against the server's: the send phase sweeps the
   * server's ticks instead of staying locked to them.
   */
  videoClockScale?: number;
  audioClockScale?: number;
  // Timing hooks (the latency benchmark); all times are performance.now() ms.
  /** A fixture video frame was handed to the sender: its index in the IVF file. */
  onVideoSent?: (frameIndex: number, at: number) => void;
  /** A fixture Opus packet was handed to the sender: its index in the Ogg file (headers excluded). */
  onAudioSent?: (packetIndex: number, at: number) => void;
  /**
   * A decoded composite frame (rgb24 VIEW_W x VIEW_H, needs `decode`) was read from the decoder at
   * `at`; `receivedAt` is when the encoded frame with the same index was reassembled from RTP
   * (exact while no frame is lost or duplicated).
   */
  onDecodedFrame?: (rgb: Buffer, at: number, receivedAt: number | undefined) => void;
  /** A chunk of decoded mix audio (s16le mono 48 kHz, needs `decode`) was read from the decoder at `at`. */
  onPcm?: (pcm: Buffer, at: number) => void;
}

const AUD = Buffer.from([0, 0, 0, 1, 9, 0xf0]);

/** H.264 fixture frames as a camera sends them: Annex-B, SPS and PPS before each keyframe. */
function readH264Fixture(file: string): { data: Buffer; isKeyframe: boolean }[] {
  const flv = new FlvReader();
  const frames = flv.push(fs.readFileSync(file));
  const c = flv.config;
  if (!c) throw new Error(`${file}: no AVC sequence header`);
  return frames.map((f) => ({ data: avccToAnnexB(f.data, c.naluLengthSize, f.isKeyframe ? [...c.sps, ...c.pps] : []), isKeyframe: f.isKeyframe }));
}

export class SyntheticParticipant {
  ws: WebSocket;
  /** The node a `redirect` sent this participant to (several nodes), else the url it was given. */
  node: string;
  pc!: RTCPeerConnection;
  participantId = "";
  participants: { id: string; name: string }[] = [];
  /** The last `participants` message (who is here, tile size, whether the room is recorded). */
  roomState: { recording: { id: string; startedAt: string } | null } | undefined;
  readonly errors: { code: string; message: string }[] = [];
  readonly messages: Record<string, unknown>[] = [];
  /** Arrival time (performance.now()) of every complete composite frame. */
  readonly frameTimes: number[] = [];
  readonly keyframeTimes: number[] = [];
  /** Picture size of the last VP8 keyframe received (the rung it is on), e.g. "640x360". */
  keyframeSize: string | undefined;
  /** Overrides `silent` once set (setTalking). */
  private talking: boolean | undefined;
  videoTracksReceived = 0;
  audioTracksReceived = 0;
  plisReceived = 0;
  bytesReceived = 0;
  /** The latest decoded composite, rgb24 VIEW_W x VIEW_H. */
  latestFrame: Buffer | undefined;
  decodedFrames = 0;
  /** When each audio packet from the server arrived (performance.now() ms). */
  audioPacketTimes: number[] = [];
  /** Messages that came on its chat channel (chat from others, errors), with their arrival time. */
  readonly chatReceived: { at: number; msg: { type: string; from?: string; text?: string; code?: string } }[] = [];
  chatChannel: RTCDataChannel | undefined;
  private pcm: Buffer[] = [];
  private pcmBytes = 0;
  private sendingVideo = true;
  private frames: { data: Buffer; isKeyframe: boolean }[];
  private readonly opus: Buffer[];
  private videoTx!: RTCRtpTransceiver;
  private audioTx!: RTCRtpTransceiver;
  private clocks: MediaClock[] = [];
  private children: FfmpegProcess[] = [];
  private frameIdx = 0;

  constructor(private readonly o: SyntheticOptions) {
    this.frames = o.videoCodec === "h264" ? readH264Fixture(o.video) : new IvfReader().push(fs.readFileSync(o.video)).map((f) => ({ data: f.data, isKeyframe: f.isKeyframe }));
    this.opus = new OggPacketReader().push(fs.readFileSync(o.audio)).filter((p) => !isOpusHeaderPacket(p.data)).map((p) => p.data);
    this.node = o.url;
    this.ws = this.connect(o.url);
  }

  private connect(url: string): WebSocket {
    const ws = new WebSocket(url.replace(/^http/, "ws") + "/ws", this.o.localAddress ? { localAddress: this.o.localAddress } : undefined);
    ws.on("message", (d) => ws === this.ws && this.onMessage(JSON.parse(d.toString())));
    ws.on("error", () => {});
    return ws;
  }

  /** Opens the socket only (for signaling tests). */
  async open(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) return;
    await new Promise<void>((res, rej) => {
      this.ws.once("open", () => res());
      this.ws.once("error", rej);
    });
  }

  send(m: unknown): void {
    this.ws.send(typeof m === "string" ? m : JSON.stringify(m));
  }

  /** Waits for the next server message of `type` (after `since` messages). */
  next(type: string, timeoutMs = 10_000, since = this.messages.length): Promise<Record<string, any>> {
    return this.nextOf([type], timeoutMs, since);
  }

  /** Waits for the next server message of any of `types`. */
  async nextOf(types: string[], timeoutMs = 10_000, since = this.messages.length): Promise<Record<string, any>> {
    const t0 = Date.now();
    for (;;) {
      const m = this.messages.slice(since).find((x) => types.includes(x.type as string));
      if (m) return m;
      if (Date.now() - t0 > timeoutMs) throw new Error(`${this.o.name}: no "${types.join('" or "')}" within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private onMessage(m: Record<string, any>): void {
    this.messages.push(m);
    if (m.type === "participants") {
      this.participants = m.participants;
      this.roomState = m as SyntheticParticipant["roomState"];
    }
    if (m.type === "error") this.errors.push({ code: m.code, message: m.message });
    if (m.type === "candidate" && m.candidate && this.pc) void this.pc.addIceCandidate(m.candidate).catch(() => {});
  }

  /** Sends `join` and follows `redirect`s (several nodes) as the page does; resolves with `joined`. */
  private async signalJoin(): Promise<Record<string, any>> {
    for (let hops = 0; ; hops++) {
      await this.open();
      const since = this.messages.length;
      this.send({ type: "join", room: this.o.room, name: this.o.name, ...(this.o.token ? { token: this.o.token } : {}), ...(this.o.quality ? { quality: this.o.quality } : {}) });
      const m = await this.nextOf(["joined", "redirect", "error"], 10_000, since);
      if (m.type === "joined") return m;
      if (m.type === "error") throw new Error(`${this.o.name}: join refused: ${m.code}: ${m.message}`);
      if (hops >= 3) throw new Error(`${this.o.name}: redirected too often`);
      this.ws.close();
      this.node = m.url;
      this.ws = this.connect(m.url);
    }
  }

  /** Joins, negotiates, and starts sending media; resolves when ICE/DTLS is connected. */
  async join(): Promise<void> {
    const joined = await this.signalJoin();
    this.participantId = joined.participantId;
    this.pc = new RTCPeerConnection({
      bundlePolicy: "max-bundle",
      codecs: {
        video: [
          this.o.videoCodec === "h264"
            ? useH264({ payloadType: 102, rtcpFeedback: [useNACK(), usePLI(), useFIR()] })
            : useVP8({ payloadType: 96, rtcpFeedback: [useNACK(), usePLI(), useFIR()] }),
        ],
        audio: [useOPUS({ payloadType: 111 })],
      },
    });
    const sends = this.o.sends ?? { audio: true, video: true };
    const tx = (kind: "audio" | "video") =>
      sends[kind] ? this.pc.addTransceiver(new MediaStreamTrack({ kind }), { direction: "sendrecv" }) : this.pc.addTransceiver(kind, { direction: "recvonly" });
    this.videoTx = tx("video");
    this.audioTx = tx("audio");
    this.pc.onTrack.subscribe((track) => (track.kind === "video" ? this.receiveVideo(track) : this.receiveAudio(track)));
    // Candidates found while setLocalDescription runs must follow the offer, not precede it.
    const early: unknown[] = [];
    let offerSent = false;
    this.pc.onIceCandidate.subscribe((c) => {
      if (!c) return;
      if (offerSent || this.o.trickleBeforeOffer) this.send({ type: "candidate", candidate: c.toJSON() });
      else early.push(c.toJSON());
    });
    const onCameraRtcp = (p: RtcpPacket) => {
      if (p instanceof RtcpPayloadSpecificFeedback && (p.feedback as { count: number }).count === 1) this.onPli();
    };
    this.videoTx.sender.onRtcp.subscribe(onCameraRtcp);
    this.videoTx.receiver.onRtcp.subscribe(onCameraRtcp);
    if (this.o.chat) {
      const dc = (this.chatChannel = this.pc.createDataChannel("chat"));
      dc.onMessage.subscribe((raw) => this.chatReceived.push({ at: performance.now(), msg: JSON.parse(raw.toString()) }));
    }
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    const before = this.messages.length;
    const sdp = this.pc.localDescription!.sdp;
    this.send({ type: "offer", sdp: this.o.trickleBeforeOffer ? sdp.split("\r\n").filter((l) => !l.startsWith("a=candidate:") && l !== "a=end-of-candidates").join("\r\n") : sdp });
    offerSent = true;
    for (const c of early) this.send({ type: "candidate", candidate: c });
    const answer = await this.next("answer", 10_000, before);
    await this.pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    await new Promise<void>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`${this.o.name}: not connected`)), 15_000);
      const check = () => this.pc.connectionState === "connected" && (clearTimeout(t), res());
      this.pc.connectionStateChange.subscribe(check);
      check();
    });
    this.startSending();
  }

  private startSending(): void {
    const vp8 = this.o.videoCodec === "h264" ? new H264Packetizer({ payloadType: 102 }) : new Vp8Packetizer({ payloadType: 96 });
    const sends = this.o.sends ?? { audio: true, video: true };
    const video = new MediaClock((1000 / 30) * (this.o.videoClockScale ?? 1), (t) => {
      if (!this.sendingVideo || !sends.video) return;
      const idx = this.frameIdx++ % this.frames.length;
      const f = this.frames[idx];
      this.o.onVideoSent?.(idx, performance.now());
      const data = this.o.videoPayload?.(f.data, t.index) ?? f.data;
      for (const p of vp8.packetize(data, (t.index * 3000) >>> 0)) {
        if (this.o.videoLoss && Math.random() < this.o.videoLoss) continue;
        void this.videoTx.sender.sendRtp(p);
      }
    });
    const opus = new OpusPacketizer({ payloadType: 111 });
    const audio = new MediaClock(20 * (this.o.audioClockScale ?? 1), (t) => {
      if ((this.talking === undefined ? this.o.silent : !this.talking) || !sends.audio) return;
      const p = this.o.audioPayload?.(t.index) ?? this.opus[t.index % this.opus.length];
      this.o.onAudioSent?.(t.index % this.opus.length, performance.now());
      for (const pkt of opus.packetize(p, (t.index * 960) >>> 0)) void this.audioTx.sender.sendRtp(pkt);
    });
    this.clocks.push(video, audio);
    video.begin();
    audio.begin();
  }

  private burstOpus: OpusPacketizer | undefined;
  private burstTs = 0;

  /** Sends these Opus payloads at once, each `samples` long, as its next audio packets (a hostile burst). */
  sendOpusBurst(payloads: Buffer[], samples: number): void {
    this.burstOpus ??= new OpusPacketizer({ payloadType: 111 });
    for (const p of payloads) {
      for (const pkt of this.burstOpus.packetize(p, this.burstTs >>> 0)) void this.audioTx.sender.sendRtp(pkt);
      this.burstTs += samples;
    }
  }

  /** Starts or stops sending its tone (stopped: no audio packets at all, as a browser's DTX). */
  setTalking(on: boolean): void {
    this.talking = on;
  }

  /** The server asked for a keyframe: restart the fixture at its next keyframe. */
  private onPli(): void {
    this.plisReceived++;
    if (this.o.ignorePli) return;
    const n = this.frames.length;
    for (let k = 0; k < n; k++) {
      if (this.frames[(this.frameIdx + k) % n].isKeyframe) {
        this.frameIdx += k;
        return;
      }
    }
  }

  /**
   * Drops this fraction of everything arriving from the server before werift sees it (a lossy
   * downlink): werift's RTCP receiver reports then tell the server. werift's debug hook keeps a
   * packet with probability inboundPacketLoss/100 (its check reads inverted), so keep = 1 - loss.
   */
  setDownlinkLoss(fraction: number): void {
    const config = (this.pc as unknown as { config: { debug?: { inboundPacketLoss?: number } } }).config;
    config.debug = fraction > 0 ? { ...config.debug, inboundPacketLoss: (1 - fraction) * 100 } : {};
  }

  private downlinkJitterMs = 0;

  /**
   * A downlink that holds what arrives from the server and lets it through in bursts, every
   * 60–100 % of `maxMs` (a radio link that stalls, as Wi-Fi under interference does): frames arrive
   * unevenly but in order and none is lost, so only the receiver reports' jitter can tell. 0 stops.
   */
  setDownlinkJitter(maxMs: number): void {
    this.downlinkJitterMs = maxMs;
    if (maxMs <= 0 || this.jitterHooked) return;
    this.jitterHooked = true;
    const ice = (this.pc as unknown as { iceTransports: { connection: { onData: { execute: (...a: unknown[]) => void } } }[] }).iceTransports[0]!;
    const ev = ice.connection.onData;
    const deliver = ev.execute.bind(ev);
    // One queue per window, let through by one timer (timers set apart can fire out of order).
    let held: unknown[][] | undefined;
    ev.execute = (...args: unknown[]) => {
      if (held) return void held.push(args);
      if (this.downlinkJitterMs <= 0) return deliver(...args);
      const queue = (held = [args]);
      setTimeout(() => {
        held = undefined;
        for (const a of queue) deliver(...a);
      }, (0.6 + 0.4 * Math.random()) * this.downlinkJitterMs);
    };
  }
  private jitterHooked = false;

  /** Sends a chat message once its channel is open (resolves when it is handed to SCTP). */
  async sendChat(text: string): Promise<void> {
    const dc = this.chatChannel;
    if (!dc) throw new Error(`${this.o.name}: no chat channel (option chat)`);
    if (dc.readyState !== "open") await new Promise<void>((r) => dc.stateChanged.subscribe((s) => s === "open" && r()));
    dc.send(JSON.stringify({ text }));
  }

  /** Sends another VP8 file from its first frame on (a keyframe): a camera changing what it sends. */
  switchVideo(file: string): void {
    this.frames = new IvfReader().push(fs.readFileSync(file)).map((f) => ({ data: f.data, isKeyframe: f.isKeyframe }));
    this.frameIdx = 0;
  }

  stopVideo(): void {
    this.sendingVideo = false;
  }

  startVideo(): void {
    this.sendingVideo = true;
  }

  private receiveVideo(track: MediaStreamTrack): void {
    this.videoTracksReceived++;
    const h264 = this.o.videoCodec === "h264";
    const assembler = new Vp8FrameAssembler(120, 1024, h264 ? H264_FORMAT : undefined);
    let decoder: FfmpegProcess | undefined;
    let pts = 0;
    const size = VIEW_W * VIEW_H * 3;
    let acc: Buffer = Buffer.alloc(0);
    const fedAt = new Map<number, number>(); // reassembly time of each frame written to the decoder (only with onDecodedFrame)
    track.onReceiveRtp.subscribe((rtp: RtpPacket) => {
      this.bytesReceived += rtp.payload.length;
      const out = assembler.push(rtp);
      if (out.keyframeNeeded) this.sendPli();
      for (const f of out.frames) {
        const now = performance.now();
        this.frameTimes.push(now);
        if (f.isKeyframe) this.keyframeTimes.push(now);
        // VP8 keyframe header (RFC 6386 9.1): start code 9d 01 2a, then 14-bit width and height.
        if (f.isKeyframe && !h264 && f.data[3] === 0x9d && f.data[4] === 0x01 && f.data[5] === 0x2a) {
          this.keyframeSize = `${f.data.readUInt16LE(6) & 0x3fff}x${f.data.readUInt16LE(8) & 0x3fff}`;
        }
        if (!this.o.decode) continue;
        if (!decoder) {
          if (!f.isKeyframe) continue;
          decoder = this.spawnDecoder(["-f", h264 ? "h264" : "ivf", "-i", "pipe:0", "-vf", `scale=${VIEW_W}:${VIEW_H}`, "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]);
          decoder.stdout.on("data", (d: Buffer) => {
            acc = acc.length ? Buffer.concat([acc, d]) : d;
            while (acc.length >= size) {
              this.latestFrame = Buffer.from(acc.subarray(0, size));
              if (this.o.onDecodedFrame) {
                this.o.onDecodedFrame(this.latestFrame, performance.now(), fedAt.get(this.decodedFrames));
                fedAt.delete(this.decodedFrames);
              }
              this.decodedFrames++;
              acc = acc.subarray(size);
            }
          });
          if (!h264) decoder.write(ivfFileHeader({ width: 1280, height: 720, timebaseDen: 30 }));
        }
        if (this.o.onDecodedFrame) fedAt.set(pts, now).delete(pts - 300);
        // H.264: an access unit delimiter after each frame, so ffmpeg's parser does not wait for the next one.
        decoder.write(h264 ? Buffer.concat([f.data, AUD]) : ivfFrame(f.data, pts));
        pts++;
      }
    });
  }

  private receiveAudio(track: MediaStreamTrack): void {
    this.audioTracksReceived++;
    track.onReceiveRtp.subscribe(() => this.audioPacketTimes.push(performance.now()));
    if (!this.o.decode) return;
    const ogg = new OggOpusWriter({ channels: 1 });
    const dec = this.spawnDecoder(["-f", "ogg", "-i", "pipe:0", "-f", "s16le", "-ar", "48000", "-ac", "1", "pipe:1"]);
    dec.write(ogg.headers());
    dec.stdout.on("data", (d: Buffer) => {
      this.o.onPcm?.(d, performance.now());
      this.pcm.push(d);
      this.pcmBytes += d.length;
      while (this.pcmBytes > 48000 * 2 * 10 && this.pcm.length > 1) this.pcmBytes -= this.pcm.shift()!.length;
    });
    track.onReceiveRtp.subscribe((rtp: RtpPacket) => {
      if (rtp.payload.length) dec.write(ogg.packet(rtp.payload, 960));
    });
  }

  private spawnDecoder(args: string[]): FfmpegProcess {
    const p = new FfmpegProcess(loadConfig().ffmpegPath, "test-viewer", ["-probesize", "32", "-analyzeduration", "0", "-threads", "1", ...args]);
    this.children.push(p);
    return p;
  }

  /** The last `ms` of received mix audio, mono 48 kHz. */
  recentAudio(ms: number): Int16Array {
    const all = Buffer.concat(this.pcm);
    const want = Math.min(all.length & ~1, Math.round((ms / 1000) * 48000) * 2);
    const slice = all.subarray(all.length - want - (all.length % 2), all.length - (all.length % 2));
    return new Int16Array(slice.buffer.slice(slice.byteOffset, slice.byteOffset + slice.length));
  }

  /** Sends a PLI for the composite video we receive (what a browser does on picture loss). */
  sendPli(): void {
    const ssrc = this.videoTx?.receiver.tracks[0]?.ssrc;
    if (ssrc) void this.videoTx.receiver.sendRtcpPLI(ssrc);
  }

  async close(): Promise<void> {
    for (const c of this.clocks) c.stop();
    for (const c of this.children) c.close();
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close();
    await this.pc?.close().catch(() => {});
  }
}
