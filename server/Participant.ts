// One participant's WebRTC edge: a werift RTCPeerConnection that receives the camera and
// microphone and sends back the room's one composite video and this participant's
// mix-minus audio.
import { EventEmitter } from "node:events";
import {
  MediaStreamTrack, RTCPeerConnection, RTCRtpReceiver, type RTCDataChannel, GenericNack, RtcpPayloadSpecificFeedback, RtcpRrPacket, RtcpSrPacket, RtcpTransportLayerFeedback, useFIR, useH264, useNACK, useOPUS, usePLI, useSdesMid, useVP8,
  type RTCRtpTransceiver, type RtcpPacket, type RtpPacket,
} from "werift";
import { guardIce } from "./iceGate.ts";
import { countWeriftSend, LeanSender } from "./leanSender.ts";
import { RetransmitBudget } from "./retransmitBudget.ts";
import { guardSctp, sctpAssociation } from "./sctpGuard.ts";
import { KeyframeLimiter } from "../mixer/keyframeLimiter.ts";
import type { MixerSeat, ParticipantSink } from "../mixer/Mixer.ts";
import type { Config } from "./config.ts";
import { logger } from "../telemetry/log.ts";
import { histograms, metrics } from "../telemetry/metrics.ts";
import { parseChatInput, ProtocolError, type CandidateInit, type ChatMessage, type ParticipantInfo } from "./protocol.ts";
import { TokenBucket } from "./rateLimit.ts";
import { ReceiverRung, type Quality } from "./ReceiverRung.ts";
import type { Right } from "./roomTokens.ts";
import type { VideoCodec } from "../mixer/CompositeEncoder.ts";
import { acceptBundleOnly, isMdnsCandidate, preferH264Mode1, announceIp, checkOffer, offeredMedia, type OfferedMedia } from "./sdp.ts";

const log = logger("participant");
/** DataChannels other than the one chat channel a participant may ask for before all its DataChannels stop. */
const MAX_REFUSED_CHANNELS = 16;


export type { Right };

/** The codec werift will send on this transceiver (the first negotiated); the browser sends its camera in it too. */
function negotiatedCodec(t: RTCRtpTransceiver | undefined): VideoCodec | undefined {
  const mime = t?.codecs[0]?.mimeType.toLowerCase();
  return mime === "video/h264" ? "h264" : mime === "video/vp8" ? "vp8" : undefined;
}
export type { Quality };

/**
 * What werift would do with an RTP packet, read from its router before it decrypts one: media on
 * an SSRC it has no receiver for, or in a payload type that receiver did not negotiate, it drops
 * after SRTP and a header parse. The gate drops them first, counted (SSRC churn, stray types).
 */
function mediaRoutes(pc: RTCPeerConnection): (ssrc: number, payloadType: number) => "ssrc" | "payload_type" | undefined {
  const router = (pc as unknown as { router: { ssrcTable: Record<number, unknown>; ridTable: Record<string, unknown> } }).router;
  return (ssrc, payloadType) => {
    for (const _rid in router.ridTable) return undefined; // rid-routed (simulcast): werift maps their SSRCs as they come
    const owner = router.ssrcTable[ssrc];
    if (!(owner instanceof RTCRtpReceiver)) return "ssrc";
    return (owner as unknown as { codecs: Record<number, unknown> }).codecs[payloadType] ? undefined : "payload_type";
  };
}
export type CloseReason = "left" | "disconnected" | "ice-failed" | "room-closed" | "room-ended" | "kicked" | "no-offer" | "shutdown";

/** Open rooms (no AUTH_SECRET): everyone publishes and subscribes; recording follows CLIENT_RECORDING. */
export const OPEN_RIGHTS: Right[] = ["publish", "subscribe", "record"];

export class Participant extends EventEmitter<{
  candidate: [CandidateInit | null];
  /** detail: why, in words, for a kick or an ended room. */
  close: [CloseReason, string | undefined];
  media: [];
  /** A moderator changed what of ours is kept out of the mix (true = muted by the moderator). */
  moderated: [audio: boolean, video: boolean];
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
  /** Error replies on the chat channel: a flood of bad messages gets a few answers, not one each (all are counted). */
  private readonly chatErrorReplies = new TokenBucket(1, 3);
  private channelsRefused = 0;
  /** Its place in the room's mix, once its offer is accepted (it holds that, not the mixer). */
  private seat: MixerSeat | undefined;
  /** What the accepted offer sends (mic, camera); undefined until then. */
  sends: OfferedMedia | undefined;
  /** The video codec negotiated both ways (its composite and its camera); undefined without video. */
  codec: VideoCodec | undefined;
  /** Mic / camera kept out of the mix by a moderator. */
  private moderated = { audio: false, video: false };
  /** The client's address, as signaling saw it (decode pools, logs). */
  address = "unknown";
  /** Its share of media bandwidth taken in (its own, its address's), before werift decrypts a packet. */
  ingress: { take(bytes: number): boolean; release(): void } | undefined;
  /** The room token's id, where the server checks tokens. */
  tokenId: string | undefined;
  /** Dropped if no offer comes in time: a joined socket that never offers holds no seat for long. */
  private offerTimer: NodeJS.Timeout | undefined;
  /** Microphone / camera state as the client announced it. */
  audio = true;
  video = true;
  /** Composite keyframe requests seen from this participant's browser (PLI/FIR). */
  pliReceived = 0;
  /** When it joined, and whether its media connection has been up yet (the join-time histogram). */
  private readonly joinedAt = performance.now();
  private connectedOnce = false;

  constructor(
    readonly id: string,
    readonly name: string,
    private readonly config: Config,
    /** Enters the room's mix once the offer is accepted (what it sends decides tile and decoders). */
    private readonly admit: (sends: OfferedMedia) => MixerSeat,
    readonly rights: Right[] = OPEN_RIGHTS,
  ) {
    super();
    this.rung = new ReceiverRung(config.outputRungs.length, (r) => this.seat?.setRung(r), id, (r) => this.seat?.judgeLink(r) ?? { ...r, common: { loss: 0, jitterMs: 0 } });
    this.offerTimer = setTimeout(() => this.close("no-offer"), config.joinOfferTimeoutMs);
    this.offerTimer.unref();
  }

  /** A moderator may also record (moderation covers starting and stopping the room's recording). */
  can(right: Right): boolean {
    return this.rights.includes(right) || (right === "record" && this.rights.includes("moderate"));
  }

  /** The sink the mixer writes this participant's outgoing media into. */
  readonly sink: ParticipantSink = {
    sendVideo: (p: RtpPacket) => {
      if (!this.subscribes || !this.videoTx) return;
      this.lastVideoTs = p.header.timestamp;
      this.rung.packetSent();
      if (this.videoLean?.send(p)) return;
      countWeriftSend();
      this.videoTx.sender.sendRtp(p).catch(() => {});
    },
    sendAudio: (p: RtpPacket) => {
      if (!this.subscribes || !this.audioTx) return;
      if (this.audioLean?.send(p)) return;
      countWeriftSend();
      this.audioTx.sender.sendRtp(p).catch(() => {});
    },
    requestCameraKeyframe: (reason: string) => this.requestCameraKeyframe(reason),
    // werift then carries the sequence on from the last packet; the timestamp step keeps the
    // media clock exact (every output stamps a tick the same way).
    videoSourceChanged: (timestamp: number) => {
      if (this.lastVideoTs === undefined) return;
      this.videoTx?.sender.replaceRTP({} as RtpPacket["header"], false, ((timestamp - this.lastVideoTs) >>> 0) || 1);
    },
  };
  private lastVideoTs: number | undefined;
  /** The lean send path for each outgoing stream (RTP_SENDER=lean); werift's sender takes what it declines. */
  private videoLean: LeanSender | undefined;
  private audioLean: LeanSender | undefined;
  /** The rung of the composite it receives: pinned, or following its link. */
  private readonly rung: ReceiverRung;

  private createPeer(): RTCPeerConnection {
    const c = this.config;
    const pc = new RTCPeerConnection({
      iceServers: [], // the server is reachable directly (or through TURN the client uses); no public STUN
      bundlePolicy: "max-bundle",
      icePortRange: c.rtcPortRange,
      iceAdditionalHostAddresses: c.iceExtraHosts.length ? c.iceExtraHosts : undefined,
      codecs: {
        // In the server's order of preference: werift answers with the first the browser offers too.
        video: c.videoCodecs.map((codec) =>
          codec === "h264"
            ? useH264({ payloadType: 102, rtcpFeedback: [useNACK(), usePLI(), useFIR()], parameters: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f" })
            : useVP8({ payloadType: 96, rtcpFeedback: [useNACK(), usePLI(), useFIR()] }),
        ),
        audio: [useOPUS({ payloadType: 111 })],
      },
      // The MID extension lets werift route a bundled stream even when the offer lists no a=ssrc.
      headerExtensions: { video: [useSdesMid()], audio: [useSdesMid()] },
    });
    pc.onTrack.subscribe((track) => {
      if (track.kind === "video") {
        track.onReceiveRtp.subscribe((rtp) => {
          this.cameraSsrc = rtp.header.ssrc;
          this.seat?.pushVideoRtp(rtp);
        });
      } else {
        track.onReceiveRtp.subscribe((rtp) => this.seat?.pushAudioRtp(rtp));
      }
    });
    pc.onDataChannel.subscribe((dc) => {
      // One "chat" channel is all a client needs; werift keeps every channel it is asked to open.
      if (dc.label !== "chat" || this.chat) {
        metrics.dataChannelDropped.inc({ reason: "channel" });
        if (++this.channelsRefused > MAX_REFUSED_CHANNELS) {
          metrics.dataChannelDropped.inc({ reason: "too_many_channels" });
          log.warn("participant opened too many DataChannels: its DataChannels are stopped", { participant: this.id });
          void (pc as unknown as { sctpTransport?: { stop(): Promise<void> } }).sctpTransport?.stop().catch(() => {});
          return;
        }
        // After werift has opened and acknowledged it (closing inside its open handler breaks that).
        setImmediate(() => dc.close());
        return;
      }
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
      if (state === "connected") {
        this.seat?.requestKeyframe("receiver connected");
        if (!this.connectedOnce) histograms.joinTime.observe((performance.now() - this.joinedAt) / 1000);
        this.connectedOnce = true;
      }
      if (state === "failed") this.close("ice-failed");
    });
    return pc;
  }

  /**
   * Answers the browser's offer: camera + mic (addTrack), either alone, or neither (a viewer offers
   * both recvonly). Our tracks ride the same transceivers; werift answers each section with our
   * sendrecv narrowed to what the client offered (a recvonly section gets sendonly).
   */
  async handleOffer(offer: string): Promise<string> {
    if (this.closed) throw new Error("participant closed");
    if (this.pc) throw new Error("this participant already negotiated; to change devices, leave and join again");
    const problem = checkOffer(offer, { mediaSections: this.config.maxSdpMediaSections, lines: this.config.maxSdpLines });
    if (problem) throw new Error(problem);
    const sdp = preferH264Mode1(acceptBundleOnly(offer));
    const sends = offeredMedia(sdp);
    if ((sends.audio || sends.video) && !this.can("publish")) {
      throw new ProtocolError("forbidden", "this token may not send camera or microphone: offer them recvonly (watch mode)");
    }
    const pc = (this.pc = this.createPeer());
    let local: string;
    try {
      await pc.setRemoteDescription({ type: "offer", sdp });
      // Before werift gathers (in setLocalDescription): its sockets open behind the gate.
      guardIce(pc.iceTransports.map((t) => t.connection as unknown as Parameters<typeof guardIce>[0][number]), {
        stunPerSecond: this.config.stunPerSecond, stunBurst: this.config.stunPerSecond * 2, participant: this.id, ingress: this.ingress, rtcpPerSecond: this.config.rtcpPerSecond,
        maxPacketBytes: this.config.rtpMaxPacketBytes, maxExtensionBytes: this.config.rtpMaxExtensionBytes, routes: mediaRoutes(pc),
        dataBytesPerSecond: (this.config.dataChannelKbps * 1000) / 8,
      });
      const sctp = sctpAssociation(pc);
      if (sctp) guardSctp(sctp);
      this.remoteApplied = true;
      for (const c of this.early.splice(0)) this.applyCandidate(c, "before_offer");
      for (const t of pc.getTransceivers()) {
        if (t.kind === "video" && !this.videoTx) this.attach(t, this.videoOut);
        else if (t.kind === "audio" && !this.audioTx) this.attach(t, this.audioOut);
      }
      await pc.setLocalDescription(await pc.createAnswer());
      local = pc.localDescription!.sdp;
      if (this.closed) throw new Error("participant closed");
    } catch (err) {
      // werift could not take it: the participant may try another offer on a fresh peer.
      void pc.close().catch(() => {});
      if (this.pc === pc) this.pc = this.videoTx = this.audioTx = this.videoLean = this.audioLean = undefined;
      this.remoteApplied = false;
      throw err;
    }
    // Media can flow only once the client has the answer: enter the mix now, with what it sends.
    clearTimeout(this.offerTimer);
    this.sends = sends;
    this.codec = negotiatedCodec(this.videoTx);
    this.seat = this.admit(sends);
    this.pushMediaState();
    this.emit("media"); // everyone's list now shows what it sends and its rung
    return this.config.announcedIp ? announceIp(local, this.config.announcedIp) : local;
  }

  private attach(t: RTCRtpTransceiver, track: MediaStreamTrack): void {
    t.setDirection("sendrecv");
    void t.sender.replaceTrack(track);
    this.boundRetransmissions(t);
    const lean = this.config.rtpSender === "lean" ? new LeanSender(t.sender) : undefined;
    if (t.kind === "video") {
      this.videoTx = t;
      this.videoLean = lean;
      // werift routes a browser's PLI for our sender SSRC to the receiver of a sendrecv
      // transceiver (DESIGN.md): watch both sides and match the media SSRC ourselves.
      const onRtcp = (packet: RtcpPacket) => this.onVideoRtcp(packet);
      t.receiver.onRtcp.subscribe(onRtcp);
      t.sender.onRtcp.subscribe(onRtcp);
    } else {
      this.audioTx = t;
      this.audioLean = lean;
      // Its reports on our audio: the loss its mix-minus encoder's in-band FEC is sized to.
      const onRtcp = (packet: RtcpPacket) => this.onAudioRtcp(packet);
      t.receiver.onRtcp.subscribe(onRtcp);
      t.sender.onRtcp.subscribe(onRtcp);
    }
  }

  /**
   * werift resends whatever a NACK names, as often as it is named: this receiver's requests are
   * cut to its retransmission budget before werift's sender sees them (retransmitBudget.ts).
   */
  private boundRetransmissions(t: RTCRtpTransceiver): void {
    const budget = new RetransmitBudget(this.config.retransmitPerSecond);
    const sender = t.sender as unknown as { handleRtcpPacket(p: RtcpPacket): unknown };
    const handle = sender.handleRtcpPacket.bind(sender);
    sender.handleRtcpPacket = (packet: RtcpPacket) => {
      if (packet instanceof RtcpTransportLayerFeedback && packet.feedback instanceof GenericNack) {
        const nack = packet.feedback;
        const r = budget.filter(nack.lost);
        if (r.rate) metrics.retransmitsRefused.inc({ kind: t.kind, reason: "rate" }, r.rate);
        if (r.repeat) metrics.retransmitsRefused.inc({ kind: t.kind, reason: "repeat" }, r.repeat);
        if (!r.allowed.length) return;
        if (r.allowed.length !== nack.lost.length) {
          // werift reads `lost`; the receiver's own count (its link) was taken from the whole request.
          packet = new RtcpTransportLayerFeedback({ header: packet.header, feedback: new GenericNack({ ...nack, lost: r.allowed }) });
        }
      }
      return handle(packet);
    };
  }

  /** The last two reports' loss on our audio, the larger (a loss burst is not forgotten at once). */
  private audioLoss: number[] = [];

  private onAudioRtcp(packet: RtcpPacket): void {
    if (!(packet instanceof RtcpRrPacket || packet instanceof RtcpSrPacket)) return;
    const ours = this.audioTx?.sender.ssrc;
    for (const r of packet.reports) {
      if (r.ssrc !== ours) continue;
      this.audioLoss = [...this.audioLoss.slice(-1), r.fractionLost / 256];
      this.seat?.setAudioLoss(Math.max(...this.audioLoss));
    }
  }

  private onVideoRtcp(packet: RtcpPacket): void {
    const ours = this.videoTx?.sender.ssrc;
    if (packet instanceof RtcpRrPacket || packet instanceof RtcpSrPacket) {
      // Jitter is in RTP timestamp units: 90 kHz for video, VP8 and H.264 alike.
      for (const r of packet.reports) if (r.ssrc === ours) this.rung.report(r.fractionLost / 256, r.jitter / 90);
      return;
    }
    if (packet instanceof RtcpTransportLayerFeedback && packet.feedback instanceof GenericNack && packet.feedback.mediaSourceSsrc === ours) {
      this.rung.nacked(packet.feedback.lost);
      return;
    }
    if (!(packet instanceof RtcpPayloadSpecificFeedback)) return;
    const fb = packet.feedback as { count?: number; mediaSsrc?: number; fir?: { ssrc: number }[] };
    const isPli = fb.count === 1 && fb.mediaSsrc === ours;
    const isFir = fb.count === 4 && (fb.fir ?? []).some((e) => e.ssrc === ours);
    if (!isPli && !isFir) return;
    this.pliReceived++;
    this.seat?.requestKeyframe(isPli ? "receiver PLI" : "receiver FIR");
  }

  /** high: the top rung; low: the lowest (data saver); auto: follow the link. */
  setQuality(q: Quality): void {
    const rung = this.rung.setQuality(q); // not inside `?.`: it must run before the offer too
    this.seat?.setRung(rung);
  }

  /** Where its composite starts on the ladder. */
  startRung(): number {
    return this.rung.start;
  }

  private onChatInput(raw: string | Buffer): void {
    try {
      if (!this.chatLimit.take()) throw new ProtocolError("rate_limited", "too many chat messages; slow down");
      this.emit("chat", parseChatInput(raw));
    } catch (err) {
      const e = err instanceof ProtocolError ? err : new ProtocolError("internal", (err as Error).message);
      metrics.signalingErrors.inc({ code: `chat_${e.code}` });
      if (this.chatErrorReplies.take()) this.sendOnChat({ type: "error", code: e.code, message: e.message });
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

  /** The client muted/unmuted its mic or turned its camera off/on (a repeat of the same state changes nothing). */
  setMedia(audio: boolean, video: boolean): void {
    if (audio === this.audio && video === this.video) return;
    this.audio = audio;
    this.video = video;
    this.pushMediaState();
    this.emit("media");
  }

  private pushMediaState(): void {
    this.seat?.setMedia(this.audio && !this.moderated.audio, this.video && !this.moderated.video);
  }

  /** A moderator keeps our mic / camera out of the mix (true) or lets it back (false); undefined = unchanged. */
  moderate(audio: boolean | undefined, video: boolean | undefined): void {
    this.moderated = { audio: audio ?? this.moderated.audio, video: video ?? this.moderated.video };
    this.pushMediaState();
    this.emit("moderated", this.moderated.audio, this.moderated.video);
    this.emit("media");
  }

  private get subscribes(): boolean {
    return this.can("subscribe");
  }

  /** How the room lists this participant: `sends` null while it has not offered yet. */
  info(): ParticipantInfo {
    const s = this.sends;
    return {
      id: this.id,
      name: this.name,
      audio: this.audio && !this.moderated.audio && !!s?.audio,
      video: this.video && !this.moderated.video && !!s?.video,
      sends: s ? { audio: s.audio, video: s.video } : null,
      moderated: this.moderated.audio || this.moderated.video,
      rung: this.rungName(),
      tile: this.tile(),
      speaking: this.seat?.speaking ?? false,
    };
  }

  private tile(): { width: number; height: number } | null {
    const r = this.seat?.tile;
    return r ? { width: r.w, height: r.h } : null;
  }

  /** The size of the composite it receives now, e.g. "640x360" (null: no video). */
  private rungName(): string | null {
    const r = this.seat?.rung;
    const rung = r === undefined ? undefined : this.config.outputRungs[r];
    return rung ? `${rung.width}x${rung.height}` : null;
  }

  private requestCameraKeyframe(reason: string): void {
    const ssrc = this.cameraSsrc;
    const rx = this.videoTx?.receiver;
    if (!ssrc || !rx || this.closed) return;
    if (!this.cameraKeyframes.request().forceNow) return;
    log.debug("camera keyframe requested", { participant: this.id, reason });
    metrics.plisSent.inc({ reason });
    rx.sendRtcpPLI(ssrc).catch(() => {});
  }

  /**
   * A trickled candidate. Never awaited by signaling: werift resolves a `.local` (mDNS) name by
   * multicast and waits up to 10 s for it, which would hold up the session's next messages. Those
   * names are skipped instead: they are link-local, a server is almost never on the browser's link,
   * and the browser's own checks reach us anyway (werift learns it as a peer-reflexive candidate).
   */
  addCandidate(c: CandidateInit | null): void {
    if (!c || !c.candidate) return; // end-of-candidates (null, or Firefox's empty string)
    if (isMdnsCandidate(c.candidate)) {
      metrics.iceCandidatesSkipped.inc({ reason: "mdns" });
      return;
    }
    // Each remote candidate is a target of connectivity checks: a bounded number per participant,
    // so a seat cannot aim the server's STUN checks at a list of strangers.
    if (++this.candidates > this.config.maxRemoteCandidates) {
      metrics.iceCandidatesSkipped.inc({ reason: "too_many" });
      return;
    }
    // Trickled as it gathered, ahead of its offer (werift, libdatachannel do): kept and applied
    // once the offer is (a participant with no offer in time is closed, and these with it).
    if (!this.remoteApplied) this.early.push(c);
    else this.applyCandidate(c, "after_offer");
  }

  /** Candidates that came before the offer was applied. */
  private early: CandidateInit[] = [];
  private candidates = 0;
  private remoteApplied = false;

  private applyCandidate(c: CandidateInit, when: "before_offer" | "after_offer"): void {
    metrics.iceCandidatesApplied.inc({ when });
    this.pc!
      .addIceCandidate({ candidate: c.candidate, sdpMid: c.sdpMid ?? undefined, sdpMLineIndex: c.sdpMLineIndex ?? undefined })
      .catch((err) => {
        metrics.iceCandidatesSkipped.inc({ reason: "rejected" });
        log.debug("candidate rejected", { participant: this.id, error: (err as Error).message });
      });
  }

  close(reason: CloseReason, detail?: string): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.offerTimer);
    // It owns its seat: leaving the mix is its own doing (a no-op if the room closed the mixer first).
    this.seat?.close();
    this.seat = undefined;
    this.ingress?.release();
    this.pc?.close().catch(() => {});
    this.pc = undefined;
    this.emit("close", reason, detail);
  }
}
