// One participant's WebRTC edge: a werift RTCPeerConnection that receives the camera and
// microphone and sends back the room's one composite video and this participant's
// mix-minus audio.
import { EventEmitter } from "node:events";
import {
  MediaStreamTrack, RTCPeerConnection, type RTCDataChannel, RtcpPayloadSpecificFeedback, useFIR, useNACK, useOPUS, usePLI, useVP8,
  type RTCRtpTransceiver, type RtcpPacket, type RtpPacket,
} from "werift";
import { KeyframeLimiter } from "../mixer/keyframeLimiter.ts";
import type { Mixer, ParticipantSink } from "../mixer/Mixer.ts";
import type { Config } from "./config.ts";
import { logger } from "./log.ts";
import { metrics } from "./metrics.ts";
import { parseChatInput, ProtocolError, type CandidateInit, type ChatMessage } from "./protocol.ts";
import { TokenBucket } from "./rateLimit.ts";
import { announceIp, checkOffer } from "./sdp.ts";

const log = logger("participant");

export type CloseReason = "left" | "disconnected" | "ice-failed" | "room-closed";

export class Participant extends EventEmitter<{
  candidate: [CandidateInit | null];
  close: [CloseReason];
  media: [];
  chat: [string];
}> {
  private pc: RTCPeerConnection | undefined;
  private readonly videoOut = new MediaStreamTrack({ kind: "video" });
  private readonly audioOut = new MediaStreamTrack({ kind: "audio" });
  private videoTx: RTCRtpTransceiver | undefined;
  private audioTx: RTCRtpTransceiver | undefined;
  private readonly cameraKeyframes = new KeyframeLimiter(300);
  private cameraSsrc: number | undefined;
  private closed = false;
  private chat: RTCDataChannel | undefined;
  private readonly chatLimit = new TokenBucket(2, 5);
  /** Microphone / camera state as the client announced it. */
  audio = true;
  video = true;
  /** Composite keyframe requests seen from this participant's browser (PLI/FIR). */
  pliReceived = 0;

  constructor(
    readonly id: string,
    readonly name: string,
    private readonly mixer: Mixer,
    private readonly config: Config,
  ) {
    super();
  }

  /** The sink the mixer writes this participant's outgoing media into. */
  readonly sink: ParticipantSink = {
    sendVideo: (p: RtpPacket) => void this.videoTx?.sender.sendRtp(p).catch(() => {}),
    sendAudio: (p: RtpPacket) => void this.audioTx?.sender.sendRtp(p).catch(() => {}),
    requestCameraKeyframe: (reason: string) => this.requestCameraKeyframe(reason),
  };

  private createPeer(): RTCPeerConnection {
    const c = this.config;
    const pc = new RTCPeerConnection({
      iceServers: [], // the server is reachable directly (or through TURN the client uses); no public STUN
      bundlePolicy: "max-bundle",
      icePortRange: c.rtcPortRange,
      iceAdditionalHostAddresses: c.iceExtraHosts.length ? c.iceExtraHosts : undefined,
      codecs: {
        video: [useVP8({ payloadType: 96, rtcpFeedback: [useNACK(), usePLI(), useFIR()] })],
        audio: [useOPUS({ payloadType: 111 })],
      },
    });
    pc.onTrack.subscribe((track) => {
      if (track.kind === "video") {
        track.onReceiveRtp.subscribe((rtp) => {
          this.cameraSsrc = rtp.header.ssrc;
          this.mixer.pushVideoRtp(this.id, rtp);
        });
      } else {
        track.onReceiveRtp.subscribe((rtp) => this.mixer.pushAudioRtp(this.id, rtp));
      }
    });
    pc.onDataChannel.subscribe((dc) => {
      if (dc.label !== "chat") return;
      this.chat = dc;
      dc.onMessage.subscribe((raw) => this.onChatInput(raw));
    });
    pc.onIceCandidate.subscribe((cand) => {
      if (!cand) return this.emit("candidate", null);
      const init = cand.toJSON();
      this.emit("candidate", {
        candidate: this.config.announcedIp ? announceIp(init.candidate ?? "", this.config.announcedIp) : (init.candidate ?? ""),
        sdpMid: init.sdpMid ?? null,
        sdpMLineIndex: init.sdpMLineIndex ?? null,
      });
    });
    pc.connectionStateChange.subscribe((state) => {
      log.debug("connection state", { participant: this.id, state });
      if (state === "connected") this.mixer.requestCompositeKeyframe("receiver connected");
      if (state === "failed") this.close("ice-failed");
    });
    return pc;
  }

  /** Answers the browser's offer (addTrack camera + mic); our tracks ride the same transceivers. */
  async handleOffer(sdp: string): Promise<string> {
    if (this.closed) throw new Error("participant closed");
    const problem = checkOffer(sdp);
    if (problem) throw new Error(problem);
    this.pc ??= this.createPeer();
    const pc = this.pc;
    await pc.setRemoteDescription({ type: "offer", sdp });
    for (const t of pc.getTransceivers()) {
      if (t.kind === "video" && !this.videoTx) this.attach(t, this.videoOut);
      else if (t.kind === "audio" && !this.audioTx) this.attach(t, this.audioOut);
    }
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    const local = pc.localDescription!.sdp;
    return this.config.announcedIp ? announceIp(local, this.config.announcedIp) : local;
  }

  private attach(t: RTCRtpTransceiver, track: MediaStreamTrack): void {
    t.setDirection("sendrecv");
    void t.sender.replaceTrack(track);
    if (t.kind === "video") {
      this.videoTx = t;
      // werift routes a browser's PLI for our sender SSRC to the receiver of a sendrecv
      // transceiver (DESIGN.md): watch both sides and match the media SSRC ourselves.
      const onRtcp = (packet: RtcpPacket) => this.onVideoRtcp(packet);
      t.receiver.onRtcp.subscribe(onRtcp);
      t.sender.onRtcp.subscribe(onRtcp);
    } else {
      this.audioTx = t;
    }
  }

  private onVideoRtcp(packet: RtcpPacket): void {
    if (!(packet instanceof RtcpPayloadSpecificFeedback)) return;
    const fb = packet.feedback as { count?: number; mediaSsrc?: number; fir?: { ssrc: number }[] };
    const ours = this.videoTx?.sender.ssrc;
    const isPli = fb.count === 1 && fb.mediaSsrc === ours;
    const isFir = fb.count === 4 && (fb.fir ?? []).some((e) => e.ssrc === ours);
    if (!isPli && !isFir) return;
    this.pliReceived++;
    this.mixer.requestCompositeKeyframe(isPli ? "receiver PLI" : "receiver FIR");
  }

  private onChatInput(raw: string | Buffer): void {
    try {
      if (!this.chatLimit.take()) throw new ProtocolError("rate_limited", "too many chat messages; slow down");
      this.emit("chat", parseChatInput(raw));
    } catch (err) {
      const e = err instanceof ProtocolError ? err : new ProtocolError("internal", (err as Error).message);
      metrics.signalingErrors.inc({ code: `chat_${e.code}` });
      this.sendOnChat({ type: "error", code: e.code, message: e.message });
    }
  }

  sendChat(msg: ChatMessage): void {
    this.sendOnChat(msg);
  }

  private sendOnChat(msg: unknown): void {
    if (this.chat?.readyState !== "open") return;
    try {
      this.chat.send(JSON.stringify(msg));
    } catch {
      // the channel closed between the check and the send; the message is for a leaving participant
    }
  }

  /** The client muted/unmuted its mic or turned its camera off/on. */
  setMedia(audio: boolean, video: boolean): void {
    this.audio = audio;
    this.video = video;
    this.mixer.setMedia(this.id, audio, video);
    this.emit("media");
  }

  private requestCameraKeyframe(reason: string): void {
    const ssrc = this.cameraSsrc;
    const rx = this.videoTx?.receiver;
    if (!ssrc || !rx || this.closed) return;
    if (!this.cameraKeyframes.request().forceNow) return;
    metrics.plisSent.inc({ reason });
    rx.sendRtcpPLI(ssrc).catch(() => {});
  }

  async addCandidate(c: CandidateInit | null): Promise<void> {
    if (!this.pc) throw new Error("candidate before offer");
    if (!c || !c.candidate) return;
    await this.pc.addIceCandidate({ candidate: c.candidate, sdpMid: c.sdpMid ?? undefined, sdpMLineIndex: c.sdpMLineIndex ?? undefined });
  }

  close(reason: CloseReason): void {
    if (this.closed) return;
    this.closed = true;
    this.pc?.close().catch(() => {});
    this.pc = undefined;
    this.emit("close", reason);
  }
}
