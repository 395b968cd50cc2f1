// A headless participant: joins through /ws like a browser (one offer with sendrecv camera +
// mic), sends fixture VP8 + Opus in real time, and decodes what it receives with ffmpeg so
// tests can read the composite's pixels and the mix's audio. The benchmark reuses it.
import fs from "node:fs";
import WebSocket from "ws";
import {
  MediaStreamTrack, OpusPacketizer, RTCPeerConnection, RtcpPayloadSpecificFeedback, Vp8Packetizer, useFIR, useNACK, useOPUS, usePLI, useVP8,
  type RTCRtpTransceiver, type RtcpPacket, type RtpPacket,
} from "werift";
import { MediaClock } from "../../mixer/clock.ts";
import { FfmpegProcess } from "../../mixer/FfmpegProcess.ts";
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
  video: string; // IVF fixture path
  audio: string; // Ogg Opus fixture path
  /** Decode what is received (pixels + audio). Off in the benchmark to keep client CPU low. */
  decode?: boolean;
  /** Fraction of outgoing video packets dropped (simulated lossy uplink). */
  videoLoss?: number;
  /** Send no audio at all (a listener who never speaks). */
  silent?: boolean;
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

export class SyntheticParticipant {
  readonly ws: WebSocket;
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
  videoTracksReceived = 0;
  audioTracksReceived = 0;
  plisReceived = 0;
  bytesReceived = 0;
  /** The latest decoded composite, rgb24 VIEW_W x VIEW_H. */
  latestFrame: Buffer | undefined;
  decodedFrames = 0;
  private pcm: Buffer[] = [];
  private pcmBytes = 0;
  private sendingVideo = true;
  private readonly frames: { data: Buffer; isKeyframe: boolean }[];
  private readonly opus: Buffer[];
  private videoTx!: RTCRtpTransceiver;
  private audioTx!: RTCRtpTransceiver;
  private clocks: MediaClock[] = [];
  private children: FfmpegProcess[] = [];
  private frameIdx = 0;

  constructor(private readonly o: SyntheticOptions) {
    this.frames = new IvfReader().push(fs.readFileSync(o.video)).map((f) => ({ data: f.data, isKeyframe: f.isKeyframe }));
    this.opus = new OggPacketReader().push(fs.readFileSync(o.audio)).filter((p) => !isOpusHeaderPacket(p.data)).map((p) => p.data);
    this.ws = new WebSocket(o.url.replace(/^http/, "ws") + "/ws");
    this.ws.on("message", (d) => this.onMessage(JSON.parse(d.toString())));
    this.ws.on("error", () => {});
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
  async next(type: string, timeoutMs = 10_000, since = this.messages.length): Promise<Record<string, any>> {
    const t0 = Date.now();
    for (;;) {
      const m = this.messages.slice(since).find((x) => x.type === type);
      if (m) return m;
      if (Date.now() - t0 > timeoutMs) throw new Error(`${this.o.name}: no "${type}" within ${timeoutMs} ms`);
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

  /** Joins, negotiates, and starts sending media; resolves when ICE/DTLS is connected. */
  async join(): Promise<void> {
    await this.open();
    const since = this.messages.length;
    this.send({ type: "join", room: this.o.room, name: this.o.name });
    const joined = await this.next("joined", 10_000, since);
    this.participantId = joined.participantId;
    this.pc = new RTCPeerConnection({
      bundlePolicy: "max-bundle",
      codecs: {
        video: [useVP8({ payloadType: 96, rtcpFeedback: [useNACK(), usePLI(), useFIR()] })],
        audio: [useOPUS({ payloadType: 111 })],
      },
    });
    this.videoTx = this.pc.addTransceiver(new MediaStreamTrack({ kind: "video" }), { direction: "sendrecv" });
    this.audioTx = this.pc.addTransceiver(new MediaStreamTrack({ kind: "audio" }), { direction: "sendrecv" });
    this.pc.onTrack.subscribe((track) => (track.kind === "video" ? this.receiveVideo(track) : this.receiveAudio(track)));
    // Candidates found while setLocalDescription runs must follow the offer, not precede it.
    const early: unknown[] = [];
    let offerSent = false;
    this.pc.onIceCandidate.subscribe((c) => {
      if (!c) return;
      if (offerSent) this.send({ type: "candidate", candidate: c.toJSON() });
      else early.push(c.toJSON());
    });
    const onCameraRtcp = (p: RtcpPacket) => {
      if (p instanceof RtcpPayloadSpecificFeedback && (p.feedback as { count: number }).count === 1) this.onPli();
    };
    this.videoTx.sender.onRtcp.subscribe(onCameraRtcp);
    this.videoTx.receiver.onRtcp.subscribe(onCameraRtcp);
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    const before = this.messages.length;
    this.send({ type: "offer", sdp: this.pc.localDescription!.sdp });
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
    const vp8 = new Vp8Packetizer({ payloadType: 96 });
    const video = new MediaClock((1000 / 30) * (this.o.videoClockScale ?? 1), (t) => {
      if (!this.sendingVideo) return;
      const idx = this.frameIdx++ % this.frames.length;
      const f = this.frames[idx];
      this.o.onVideoSent?.(idx, performance.now());
      for (const p of vp8.packetize(f.data, (t.index * 3000) >>> 0)) {
        if (this.o.videoLoss && Math.random() < this.o.videoLoss) continue;
        void this.videoTx.sender.sendRtp(p);
      }
    });
    const opus = new OpusPacketizer({ payloadType: 111 });
    const audio = new MediaClock(20 * (this.o.audioClockScale ?? 1), (t) => {
      if (this.o.silent) return;
      const p = this.opus[t.index % this.opus.length];
      this.o.onAudioSent?.(t.index % this.opus.length, performance.now());
      for (const pkt of opus.packetize(p, (t.index * 960) >>> 0)) void this.audioTx.sender.sendRtp(pkt);
    });
    this.clocks.push(video, audio);
    video.begin();
    audio.begin();
  }

  /** The server asked for a keyframe: restart the fixture at its next keyframe. */
  private onPli(): void {
    this.plisReceived++;
    const n = this.frames.length;
    for (let k = 0; k < n; k++) {
      if (this.frames[(this.frameIdx + k) % n].isKeyframe) {
        this.frameIdx += k;
        return;
      }
    }
  }

  stopVideo(): void {
    this.sendingVideo = false;
  }

  startVideo(): void {
    this.sendingVideo = true;
  }

  private receiveVideo(track: MediaStreamTrack): void {
    this.videoTracksReceived++;
    const assembler = new Vp8FrameAssembler();
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
        if (!this.o.decode) continue;
        if (!decoder) {
          if (!f.isKeyframe) continue;
          decoder = this.spawnDecoder(["-f", "ivf", "-i", "pipe:0", "-vf", `scale=${VIEW_W}:${VIEW_H}`, "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]);
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
          decoder.write(ivfFileHeader({ width: 1280, height: 720, timebaseDen: 30 }));
        }
        if (this.o.onDecodedFrame) fedAt.set(pts, now).delete(pts - 300);
        decoder.write(ivfFrame(f.data, pts++));
      }
    });
  }

  private receiveAudio(track: MediaStreamTrack): void {
    this.audioTracksReceived++;
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
