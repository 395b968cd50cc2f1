// A room's mixer: the compositor + encoder (one VP8 stream for everyone) and the audio
// mixer (one mix-minus Opus stream per listener). It starts with the room's first
// participant and close() leaves no child process, timer or socket behind.
import { OpusPacketizer, Vp8Packetizer, type RtpPacket } from "werift";
import { AudioMixer } from "./AudioMixer.ts";
import type { EncodedFrame } from "./CompositeEncoder.ts";
import { VideoCompositor, type CompositorSettings } from "./VideoCompositor.ts";
import { VideoInput } from "./VideoInput.ts";
import type { RtpLike } from "./vp8FrameAssembler.ts";

export interface MixerSettings extends CompositorSettings {
  audioKbps: number;
}

/** Where a participant's outgoing media goes (its werift senders). */
export interface ParticipantSink {
  sendVideo(packet: RtpPacket): void;
  sendAudio(packet: RtpPacket): void;
  /** Ask this participant's browser for a keyframe of its camera. */
  requestCameraKeyframe(reason: string): void;
}

interface Entry {
  sink: ParticipantSink;
  video: VideoInput;
  audioPacketizer: OpusPacketizer;
  audioTimestamp: number;
}

const random32 = () => (Math.random() * 0x100000000) >>> 0;

export class Mixer {
  private readonly entries = new Map<string, Entry>();
  private readonly compositor: VideoCompositor;
  readonly audio: AudioMixer;
  private readonly vp8 = new Vp8Packetizer({ payloadType: 96 });
  private readonly videoTsBase = random32();
  private closed = false;
  videoFramesSent = 0;

  constructor(private readonly s: MixerSettings) {
    this.compositor = new VideoCompositor(s, (f) => this.fanOutVideo(f));
    this.audio = new AudioMixer({ ffmpegPath: s.ffmpegPath, kbps: s.audioKbps });
  }

  get encoder() {
    return this.compositor.encoder;
  }

  add(id: string, name: string, sink: ParticipantSink): void {
    const video = new VideoInput(this.s.ffmpegPath, id, name, (reason) => sink.requestCameraKeyframe(reason));
    const entry: Entry = { sink, video, audioPacketizer: new OpusPacketizer({ payloadType: 111 }), audioTimestamp: random32() };
    this.entries.set(id, entry);
    this.compositor.add(video);
    this.audio.add(id, (opus, samples) => {
      const [pkt] = entry.audioPacketizer.packetize(opus, entry.audioTimestamp);
      entry.audioTimestamp = (entry.audioTimestamp + samples) >>> 0;
      if (pkt) sink.sendAudio(pkt);
    });
  }

  remove(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.entries.delete(id);
    this.compositor.remove(id);
    this.audio.remove(id);
    e.video.close();
  }

  get size(): number {
    return this.entries.size;
  }

  /** Mic muted: out of the mix at once. Camera off: placeholder tile at the next tick. */
  setMedia(id: string, audio: boolean, video: boolean): void {
    const e = this.entries.get(id);
    if (!e) return;
    e.video.cameraOff = !video;
    this.audio.setMuted(id, !audio);
  }

  pushVideoRtp(id: string, rtp: RtpLike): void {
    this.entries.get(id)?.video.pushRtp(rtp);
  }

  pushAudioRtp(id: string, rtp: RtpLike): void {
    this.audio.pushRtp(id, rtp);
  }

  /** A receiver lost the picture (PLI/FIR) or just joined: a keyframe of the composite, rate-limited. */
  requestCompositeKeyframe(reason: string): void {
    this.compositor.encoder.requestKeyframe(reason);
  }

  /** When composite tick `tick` was composed, performance.now() ms (to line recorded audio up with it). */
  compositeTickTime(tick: number): number {
    return this.compositor.tickTime(tick);
  }

  layout() {
    return this.compositor.layout();
  }

  private fanOutVideo(f: EncodedFrame): void {
    if (this.closed) return;
    const ts = (this.videoTsBase + Math.round((f.tick * 90000) / this.s.fps)) >>> 0;
    const packets = this.vp8.packetize(f.data, ts);
    this.videoFramesSent++;
    for (const e of this.entries.values()) for (const p of packets) e.sink.sendVideo(p);
  }

  close(): void {
    this.closed = true;
    this.compositor.close();
    this.audio.close();
    for (const e of this.entries.values()) e.video.close();
    this.entries.clear();
  }
}
