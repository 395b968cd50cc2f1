// A room's mixer: the compositor (one canvas per tick), one composite encoder per codec in use
// (VP8 and/or H.264) encoding every rung in use of that codec (the canvas or a smaller copy of it),
// an output per (codec, rung) — packetized once and fanned out to the receivers that take it —
// and the audio mixer (one mix-minus Opus stream per listener).
// A receiver moves between rungs make-before-break: it keeps its stream until the new one's
// keyframe, and its RTP sequence carries on across the switch. It starts with the room's first
// participant and close() leaves no child process, timer or socket behind.
import type { DecodeGate } from "./decodeBudget.ts";
import { H264Packetizer, OpusPacketizer, Vp8Packetizer, type RtpPacket } from "werift";
import { AudioMixer, type OpusEngine } from "./AudioMixer.ts";
import { CompositeEncoder, type EncodedFrame, type Rung, type VideoCodec, type VideoEngine } from "./CompositeEncoder.ts";
import type { RungEncoding } from "./RungEncoder.ts";
import { VideoCompositor, type CompositorSettings } from "./VideoCompositor.ts";
import { VideoInput } from "./VideoInput.ts";
import type { LayoutKind, Rect } from "./layout.ts";
import { OutputLinkShare, type LinkReading } from "./linkShare.ts";
import { histograms } from "../telemetry/metrics.ts";
import type { VoiceSettings } from "./voiceActivity.ts";
import type { RtpLike } from "./vp8FrameAssembler.ts";

export interface MixerSettings extends CompositorSettings {
  audioKbps: number;
  /** Where Opus runs (AudioMixer): libopus in this process (default) or ffmpeg children. */
  opusEngine?: OpusEngine;
  /** Where the composite is encoded (CompositeEncoder): FFmpeg's libraries in this process (default) or ffmpeg children. */
  videoEngine?: VideoEngine;
  voice?: VoiceSettings;
  /** The ladder: rung 0 is the canvas size; lower rungs are encoded from the scaled canvas. */
  rungs: Rung[];
}

/** Where a participant's outgoing media goes (its werift senders). */
export interface ParticipantSink {
  sendVideo(packet: RtpPacket): void;
  sendAudio(packet: RtpPacket): void;
  /** Ask this participant's browser for a keyframe of its camera. */
  requestCameraKeyframe(reason: string): void;
  /** The next video packet (RTP timestamp `timestamp`) comes from another encoder (a rung switch): keep the RTP sequence going. */
  videoSourceChanged(timestamp: number): void;
}

/** What a participant sends (a tile for either; a decoder only for what is sent) and the codec it receives. */
export interface SentMedia {
  audio: boolean;
  video: boolean;
  /** The codec its composite comes in (and its camera, if sent); none = it receives no video. */
  codec?: VideoCodec;
  /** The rung it starts on (default 0, the top). */
  rung?: number;
  /** Its camera's decode budget, made when its first video arrives (undefined: none). */
  decodeGate?: () => DecodeGate;
}

/**
 * One participant's place in the mix, held by that participant instead of the whole mixer: its
 * media in, its settings, what it sees of the mix, and its leaving. Every call is a no-op once the
 * seat or the mixer is closed.
 */
export interface MixerSeat {
  pushVideoRtp(rtp: RtpLike): void;
  pushAudioRtp(rtp: RtpLike): void;
  /** Mic muted: out of the mix at once. Camera off: placeholder tile at the next tick. */
  setMedia(audio: boolean, video: boolean): void;
  /** Moves it to another rung of the ladder, switching at that output's next keyframe. */
  setRung(rung: number): void;
  /** It lost the picture (PLI/FIR) or just connected: a keyframe of its composite, rate-limited. */
  requestKeyframe(reason: string): void;
  /**
   * Its receiver report on the composite (loss, jitter): the share of it that is its own link's,
   * once what the server itself added and what every receiver of its output sees is taken out.
   */
  judgeLink(r: LinkReading): LinkReading & { common: LinkReading };
  /** Its receiver reports this share of our audio lost: its Opus encoder adds FEC for it. */
  setAudioLoss(fraction: number): void;
  /** Its tile now (undefined: it has none). */
  readonly tile: Rect | undefined;
  /** The rung it receives (undefined: it receives no video). */
  readonly rung: number | undefined;
  readonly speaking: boolean;
  /** Leaves the mix (idempotent). */
  close(): void;
}

/** What a tap (a recording) holds: keyframes on request, when a tick was composed, and the undo. */
export interface MixerTap {
  /** A keyframe of the tapped output, rate-limited like a receiver's. */
  requestKeyframe(reason: string): void;
  /** When composite tick `tick` was composed (its clock deadline), performance.now() ms: recorded sound lines up with it. */
  tickTime(tick: number): number;
  /** Stops taking frames and sound (idempotent). */
  close(): void;
}

interface Entry {
  sink: ParticipantSink;
  /** Its tile; none for a viewer. */
  video: VideoInput | undefined;
  codec: VideoCodec | undefined;
  rung: number;
  /** Moving to this rung at its next keyframe. */
  pendingRung: number | undefined;
  audioPacketizer: OpusPacketizer;
  /** Its audio's RTP timestamp base: the packet of mixer tick t is base + t × 960. */
  audioTimestamp: number;
}

/** One encoded composite (a codec at a rung): its packetizer, and who takes it. */
interface Output {
  key: string;
  codec: VideoCodec;
  rung: number;
  packetize(frame: EncodedFrame, timestamp: number): RtpPacket[];
  receivers: Set<string>;
  /** Receivers waiting for its next keyframe to switch to it. */
  joining: Set<string>;
  /** Taps other than receivers (a recording) that keep it encoding. */
  taps: number;
  /** Its own send timing and its receivers' reports: what of a report is a receiver's link. */
  share: OutputLinkShare;
}

const keyOf = (codec: VideoCodec, rung: number) => `${codec}@${rung}`;

const random32 = () => (Math.random() * 0x100000000) >>> 0;

export class Mixer {
  private readonly entries = new Map<string, Entry>();
  private readonly outputs = new Map<string, Output>();
  /** One per codec in use, encoding the rungs of that codec's outputs. */
  private readonly encoders = new Map<VideoCodec, CompositeEncoder>();
  /** A receiver changed rung (for the participant list and metrics). */
  onRungChange: ((id: string, rung: number) => void) | undefined;
  /** Who is speaking or the active speaker changed ("speakers"), or the tiles did ("tiles"). */
  onActivity: ((what: "speakers" | "tiles") => void) | undefined;
  private kind: LayoutKind = "grid";
  private pinned: string | undefined;
  private tiles = new Map<string, Rect>();
  rungSwitches = 0;
  private readonly compositor: VideoCompositor;
  private readonly audio: AudioMixer;
  private readonly videoTsBase = random32();
  private closed = false;
  videoFramesSent = 0;

  constructor(private readonly s: MixerSettings) {
    this.compositor = new VideoCompositor(s, (canvas, tick) => {
      let taken = false;
      for (const e of this.encoders.values()) taken = e.encode(canvas, tick) || taken;
      return taken;
    });
    this.audio = new AudioMixer({ ffmpegPath: s.ffmpegPath, kbps: s.audioKbps, voice: s.voice, opusEngine: s.opusEngine });
    this.audio.on("speaking", (id, on) => {
      this.compositor.setSpeaking(id, on);
      this.onActivity?.("speakers");
    });
    this.audio.on("floor", () => {
      this.applyLayout();
      this.onActivity?.("speakers");
    });
    this.compositor.wantsFrame = () => {
      for (const e of this.encoders.values()) if (e.keyframeDue) return true;
      return false;
    };
    this.compositor.onTiles = (tiles) => {
      this.tiles = tiles;
      this.onActivity?.("tiles");
    };
  }

  /**
   * The arrangement: the grid, the active speaker large, or `pinned` large (a participant id; the
   * speaker view while it is not in the mix). Applied at the next tick; no decoder or encoder restarts.
   */
  setLayout(kind: LayoutKind, pinned?: string): void {
    this.kind = kind;
    this.pinned = kind === "pinned" ? pinned : undefined;
    this.applyLayout();
  }

  private applyLayout(): void {
    const pinnedHere = this.pinned !== undefined && this.entries.get(this.pinned)?.video;
    if (this.kind === "pinned" && pinnedHere) this.compositor.setLayout("pinned", this.pinned);
    else if (this.kind === "grid") this.compositor.setLayout("grid", undefined);
    else this.compositor.setLayout("speaker", this.audio.floorHolder);
  }

  /** The overload policy's cap on the composite frame rate (undefined: the configured rate). */
  setFrameRate(fps: number | undefined): void {
    this.compositor.setFrameRate(fps);
  }

  /** The composed canvas (yuv420p at the canvas size; live, copy what you keep). */
  get canvas(): Buffer {
    return this.compositor.lastCanvas;
  }


  /** Who is speaking now, and the active speaker. */
  get speaking(): string[] {
    return this.audio.speaking;
  }

  /** Listeners served by their own mix-minus encoder now (the talkers); the rest share one. */
  get talkers(): string[] {
    return this.audio.talkers;
  }

  get activeSpeaker(): string | undefined {
    return this.audio.floorHolder;
  }

  /** The ladder, or the canvas alone when none is configured. */
  private get ladder(): Rung[] {
    return this.s.rungs.length ? this.s.rungs : [{ width: this.s.width, height: this.s.height, kbps: this.s.kbps }];
  }

  /** The output of (`codec`, `rung`), started when its first user comes (its first frame is a keyframe). */
  private output(codec: VideoCodec, rung: number): Output {
    const key = keyOf(codec, rung);
    let o = this.outputs.get(key);
    if (o) return o;
    const packetizer = codec === "h264" ? new H264Packetizer({ payloadType: 102 }) : new Vp8Packetizer({ payloadType: 96 });
    o = { key, codec, rung, packetize: (f, ts) => packetizer.packetize(f.data, ts), receivers: new Set(), joining: new Set(), taps: 0, share: new OutputLinkShare() };
    this.outputs.set(key, o);
    this.syncEncoder(codec);
    this.compositor.refresh(); // its first frame (a keyframe) comes at the next tick, moving picture or not
    return o;
  }

  /** An output nobody takes any more stops encoding. */
  private release(key: string): void {
    const o = this.outputs.get(key);
    if (!o || o.receivers.size || o.joining.size || o.taps) return;
    this.outputs.delete(key);
    this.syncEncoder(o.codec);
  }

  /** `codec`'s encoder encodes exactly the rungs of its outputs; it exists while it has any. */
  private syncEncoder(codec: VideoCodec): void {
    const rungs = [...this.outputs.values()].filter((o) => o.codec === codec).map((o) => o.rung);
    let encoder = this.encoders.get(codec);
    if (!rungs.length) {
      encoder?.close();
      this.encoders.delete(codec);
    } else if (encoder) {
      encoder.setRungs(rungs);
    } else {
      encoder = new CompositeEncoder({ ...this.s, codec }, this.ladder, rungs);
      encoder.on("frame", (f) => {
        const o = this.outputs.get(keyOf(codec, f.rung));
        if (o) this.fanOut(o, f);
      });
      this.encoders.set(codec, encoder);
    }
  }

  /** Seats participant `id` in the mix; the returned seat is how it sends media and leaves. */
  add(id: string, name: string, sink: ParticipantSink, sends: SentMedia): MixerSeat {
    const hasTile = sends.audio || sends.video;
    const video = hasTile ? new VideoInput(this.s.ffmpegPath, id, name, (reason) => sink.requestCameraKeyframe(reason), sends.codec, sends.decodeGate) : undefined;
    const rung = Math.min(Math.max(0, sends.rung ?? 0), this.ladder.length - 1);
    const entry: Entry = {
      sink, video, codec: sends.codec, rung, pendingRung: undefined, audioPacketizer: new OpusPacketizer({ payloadType: 111 }), audioTimestamp: random32(),
    };
    this.entries.set(id, entry);
    if (sends.codec) this.output(sends.codec, rung).receivers.add(id);
    if (video) this.compositor.add(video);
    if (id === this.pinned) this.applyLayout();
    // The packet of mixer tick t carries t's own timestamp: a tick that had to be skipped leaves a gap
    // the receiver's decoder conceals, instead of compressing time.
    this.audio.add(id, sends.audio, (opus, samples, tick) => {
      const [pkt] = entry.audioPacketizer.packetize(opus, (entry.audioTimestamp + tick * samples) >>> 0);
      if (pkt) sink.sendAudio(pkt);
    });
    const here = () => this.entries.get(id) === entry;
    const mixer = this;
    return {
      pushVideoRtp: (rtp) => here() && entry.video?.pushRtp(rtp),
      pushAudioRtp: (rtp) => here() && this.audio.pushRtp(id, rtp),
      setMedia: (audio, video) => here() && this.setMedia(id, audio, video),
      setRung: (r) => here() && this.setRung(id, r),
      requestKeyframe: (reason) => here() && this.requestCompositeKeyframe(id, reason),
      setAudioLoss: (fraction) => here() && this.audio.setListenerLoss(id, fraction),
      judgeLink: (r) => {
        const o = here() && entry.codec ? this.outputs.get(keyOf(entry.codec, entry.rung)) : undefined;
        return o ? o.share.judge(id, r, performance.now()) : { ...r, common: { loss: 0, jitterMs: 0 } };
      },
      get tile() {
        return here() ? mixer.tiles.get(id) : undefined;
      },
      get rung() {
        return here() && entry.codec ? entry.rung : undefined;
      },
      get speaking() {
        return here() && mixer.speaking.includes(id);
      },
      close: () => here() && this.remove(id),
    };
  }

  private remove(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.entries.delete(id);
    if (e.codec) {
      for (const r of [e.rung, e.pendingRung]) {
        if (r === undefined) continue;
        const o = this.outputs.get(keyOf(e.codec, r));
        o?.receivers.delete(id);
        o?.share.forget(id);
        o?.joining.delete(id);
        if (o) this.release(o.key);
      }
    }
    if (e.video) this.compositor.remove(id);
    this.audio.remove(id);
    if (id === this.pinned) this.applyLayout();
    e.video?.close();
  }

  get size(): number {
    return this.entries.size;
  }

  /** The codecs being encoded now. */
  get codecs(): VideoCodec[] {
    return [...this.encoders.keys()];
  }

  /** Every rung encoder running, keyed `codec@rung` (as outputsInUse), lingering ones included. */
  get rungEncoders(): Map<string, RungEncoding> {
    const out = new Map<string, RungEncoding>();
    for (const [codec, e] of this.encoders) for (const [rung, r] of e.rungEncoders) out.set(keyOf(codec, rung), r);
    return out;
  }

  /** Each output's own send jitter now (ms), as a receiver on a perfect link would report it. */
  get sendJitterMs(): Record<string, number> {
    return Object.fromEntries([...this.outputs.values()].map((o) => [o.key, o.share.send.ms]));
  }

  /** What is being encoded now and for how many receivers, e.g. {"vp8@0": 3, "h264@1": 1}. */
  get outputsInUse(): Record<string, number> {
    return Object.fromEntries([...this.outputs.values()].map((o) => [o.key, o.receivers.size]));
  }


  /**
   * Moves receiver `id` to `rung`: its new output starts (or is asked for a keyframe) and the
   * receiver switches at that keyframe, keeping the old stream until then (no frozen picture).
   */
  private setRung(id: string, rung: number): void {
    const e = this.entries.get(id);
    if (!e?.codec || this.closed) return;
    rung = Math.min(Math.max(0, rung), this.ladder.length - 1);
    if (e.pendingRung !== undefined) {
      const o = this.outputs.get(keyOf(e.codec, e.pendingRung));
      o?.joining.delete(id);
      if (o) this.release(o.key);
      e.pendingRung = undefined;
    }
    if (rung === e.rung) return;
    e.pendingRung = rung;
    // A new output starts on a keyframe; one already running is asked for one.
    const running = this.outputs.has(keyOf(e.codec, rung));
    this.output(e.codec, rung).joining.add(id);
    if (running) this.keyframe(e.codec, "rung switch", rung);
  }

  /** Mic muted: out of the mix at once. Camera off: placeholder tile at the next tick. */
  private setMedia(id: string, audio: boolean, video: boolean): void {
    const e = this.entries.get(id);
    if (!e) return;
    if (e.video) e.video.cameraOff = !video;
    this.audio.setMuted(id, !audio);
  }



  /** Receiver `id` lost the picture (PLI/FIR) or just connected: a keyframe of its composite, rate-limited. */
  private requestCompositeKeyframe(id: string, reason: string): void {
    const e = this.entries.get(id);
    if (e?.codec) this.keyframe(e.codec, reason, e.rung);
  }

  /** A keyframe of (`codec`, `rung`), rate-limited, on the next tick even if the picture is still. */
  private keyframe(codec: VideoCodec, reason: string, rung: number): void {
    this.encoders.get(codec)?.requestKeyframe(reason, rung);
    this.compositor.refresh();
  }

  /** A recording's subscription: the composite and the full mix as they are made, and its own undo. */
  tap(codec: VideoCodec, onFrame: (f: EncodedFrame) => void, onAudio: (pcm: Int16Array, skipped: number, due: number) => void): MixerTap {
    const o = this.output(codec, 0);
    o.taps++;
    const encoder = this.encoders.get(codec)!; // kept while the tapped output is
    const top = (f: EncodedFrame & { rung: number }) => f.rung === 0 && onFrame(f);
    encoder.on("frame", top);
    this.audio.on("fullMix", onAudio);
    let open = true;
    return {
      requestKeyframe: (reason) => open && this.keyframe(codec, reason, 0),
      tickTime: (tick) => this.compositor.tickTime(tick),
      close: () => {
        if (!open) return;
        open = false;
        encoder.off("frame", top);
        this.audio.off("fullMix", onAudio);
        o.taps--;
        this.release(o.key);
      },
    };
  }

  layout() {
    return this.compositor.layout();
  }

  private fanOut(o: Output, f: EncodedFrame): void {
    if (this.closed) return;
    const ts = (this.videoTsBase + Math.round((f.tick * 90000) / this.s.fps)) >>> 0;
    if (f.isKeyframe && o.joining.size) this.switchAt(o, ts);
    if (!o.receivers.size) return;
    const packets = o.packetize(f, ts);
    this.videoFramesSent++;
    for (const id of o.receivers) {
      const sink = this.entries.get(id)?.sink;
      if (sink) for (const p of packets) sink.sendVideo(p);
    }
    // The server's own timing: from the tick's deadline to the wire, and its variation as a receiver would see it.
    const now = performance.now();
    histograms.sendDelay.observe(Math.max(0, now - this.compositor.tickTime(f.tick)) / 1000);
    o.share.send.frameSent(now, ts, packets.length);
  }

  /** `o` made a keyframe: everyone waiting for it switches now, leaving their old outputs. */
  private switchAt(o: Output, timestamp: number): void {
    for (const id of o.joining) {
      const e = this.entries.get(id);
      if (!e?.codec || e.pendingRung === undefined) continue;
      const old = this.outputs.get(keyOf(e.codec, e.rung));
      old?.receivers.delete(id);
      old?.share.forget(id);
      o.receivers.add(id);
      e.rung = e.pendingRung;
      e.pendingRung = undefined;
      e.sink.videoSourceChanged(timestamp);
      this.rungSwitches++;
      if (old) this.release(old.key);
      this.onRungChange?.(id, e.rung);
    }
    o.joining.clear();
  }

  /** Closes everything it runs; its seats and taps become no-ops (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.compositor.close();
    for (const e of this.encoders.values()) e.close();
    this.encoders.clear();
    this.outputs.clear();
    this.audio.close();
    for (const e of this.entries.values()) e.video?.close();
    this.entries.clear();
  }
}
