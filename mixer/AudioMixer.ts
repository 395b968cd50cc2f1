// The room's audio mixer: one 20 ms clock, a jitter buffer per speaker, one int32 sum per tick.
// Everyone who is talking hears the sum minus their own voice, from their own encoder; everyone
// who is silent hears the same full mix, from ONE shared encoder (their own voice is not in it).
// Talk state has a 2 s hold so listeners do not flip between encoders within a sentence.
// Opus is decoded and encoded by libopus inside this process (OPUS_ENGINE=inprocess, the default),
// or by an ffmpeg child per decoder and per encoder (OPUS_ENGINE=ffmpeg).
import { EventEmitter } from "node:events";
import { logger } from "../telemetry/log.ts";
import { metrics } from "../telemetry/metrics.ts";
import { Floor, VoiceActivity, type VoiceSettings } from "./voiceActivity.ts";
import { MediaClock, type Tick } from "./clock.ts";
import { OpusDecoder, TickedOpusEncoder } from "./AudioCodecs.ts";
import { InProcessOpusDecoder, InProcessOpusEncoder } from "./opusInProcess.ts";
import { blockLevelDb, fullMix, mixMinus, sumInputs } from "./mixMinus.ts";
import { opusPacketSamples } from "./ogg.ts";
import { PcmBuffer } from "./pcmBuffer.ts";
import { Restarts } from "./restarts.ts";

const log = logger("audio-mixer");
export const SAMPLE_RATE = 48000;
export const TICK_SAMPLES = 960; // 20 ms
/** Below this a block counts as silence (a quiet room is around -60 dBFS). */
export const TALK_THRESHOLD_DB = -50;
export const TALK_HOLD_MS = 2000;
/**
 * Most audio one participant may have decoded: 1.5× real time on average, in bursts of up to 1 s.
 * A sender of, say, 120 ms packets every 2 ms would otherwise make this process decode 60 s of audio
 * a second; what is over is dropped and counted before any decoding.
 */
export const AUDIO_RATE_SAMPLES_PER_S = 1.5 * SAMPLE_RATE;
export const AUDIO_BURST_SAMPLES = SAMPLE_RATE;

/** Late 20 ms ticks mixed and sent late rather than skipped: up to 1 s of them. */
export const AUDIO_CATCH_UP_TICKS = 50;

export type OpusEngine = "inprocess" | "ffmpeg";

export interface AudioSettings {
  ffmpegPath: string;
  kbps: number;
  voice?: VoiceSettings;
  /** Where Opus runs: libopus in this process (default) or one ffmpeg child per codec. */
  opusEngine?: OpusEngine;
}

type MixDecoder = OpusDecoder | InProcessOpusDecoder;
type MixEncoder = TickedOpusEncoder | InProcessOpusEncoder;

interface Member {
  id: string;
  decoder: MixDecoder | undefined;
  pcm: PcmBuffer;
  block: Int16Array;
  hasBlock: boolean;
  /** Its own mix-minus encoder, for when it talks; none for someone who sends no audio. */
  encoder: MixEncoder | undefined;
  out: Int16Array;
  lastSeq: number | undefined;
  /** Samples it may still have decoded now (AUDIO_RATE_SAMPLES_PER_S, AUDIO_BURST_SAMPLES), and when that was reckoned. */
  budget: number;
  budgetAt: number;
  /** Its packet of mixer tick `tick` (the clock's index: a skipped tick leaves a gap in it). */
  onPacket: (opus: Buffer, samples: number, tick: number) => void;
  muted: boolean;
  lastTalkAt: number;
  /** Speaking, as the highlight and the speaker layout see it (sustained voice, hold, hysteresis). */
  voice: VoiceActivity;
  /** Which encoder serves this listener at each recent tick. */
  route: Map<number, "own" | "general">;
  /** The loss its receiver reports on our audio, percent (its encoder's FEC follows it). */
  lossPercent: number;
  /** OPUS_ENGINE=ffmpeg: its decoder children's failures, and when the next may start (restarts.ts). */
  decoderRestarts?: Restarts;
  decoderAllowedAt?: number;
}

/**
 * fullMix: every tick's mix of everyone, how many ticks the clock skipped before it, and when the tick
 * was due (performance.now() ms; for recording).
 * speaking: a participant started or stopped speaking. floor: the active speaker changed.
 */
export class AudioMixer extends EventEmitter<{ fullMix: [Int16Array, number, number]; speaking: [string, boolean]; floor: [string | undefined] }> {
  private readonly members = new Map<string, Member>();
  private readonly sum = new Int32Array(TICK_SAMPLES);
  private readonly full = new Int16Array(TICK_SAMPLES);
  // Every tick is a packet each listener counts on: ticks that fire late are mixed and sent late
  // (caught up, up to 1 s of them), never thrown away; only a stall beyond that skips, counted.
  private readonly clock = new MediaClock(20, (t) => this.onClock(t), undefined, AUDIO_CATCH_UP_TICKS, "audio");
  private lastSkipLog = -Infinity;
  private general: MixEncoder | undefined;
  private readonly engine: OpusEngine;
  private readonly floor: Floor;
  private readonly speakerLevels = new Map<string, number>();
  ticks = 0;

  constructor(private readonly s: AudioSettings) {
    super();
    this.floor = new Floor(s.voice);
    this.engine = s.opusEngine ?? "inprocess";
    this.clock.begin();
  }

  /**
   * Adds a participant: a listener (its mix out, via onPacket) and, when it sends a mic, a speaker
   * (its Opus in). Someone without a mic never talks, so it only ever hears the shared full mix.
   */
  add(id: string, speaker: boolean, onPacket: (opus: Buffer, samples: number, tick: number) => void): void {
    // A speaker's own encoder is started now (an idle one costs no CPU) so talking starts without a spawn delay.
    const encoder = speaker ? this.newEncoder() : undefined;
    const m: Member = {
      id, decoder: undefined, pcm: new PcmBuffer(), block: new Int16Array(TICK_SAMPLES), hasBlock: false, encoder,
      out: new Int16Array(TICK_SAMPLES), lastSeq: undefined, budget: AUDIO_BURST_SAMPLES, budgetAt: performance.now(), onPacket, muted: false, lastTalkAt: -Infinity, voice: new VoiceActivity(this.s.voice), route: new Map(), lossPercent: 0,
    };
    encoder?.on("packet", (p, n, tick) => m.route.get(tick) === "own" && m.onPacket(p, n, tick));
    encoder?.on("died", () => this.encoderDied(m.id));
    this.members.set(id, m);
    this.general ??= this.startGeneral();
  }

  private newEncoder(): MixEncoder {
    this.countCodec("encoder", 1);
    return this.engine === "ffmpeg" ? new TickedOpusEncoder(this.s.ffmpegPath, this.s.kbps) : new InProcessOpusEncoder(this.s.kbps);
  }

  private countCodec(kind: "encoder" | "decoder", by: 1 | -1): void {
    metrics.audioCodecs.inc({ kind, engine: this.engine }, by);
  }

  private closeEncoder(e: MixEncoder | undefined): void {
    if (!e) return;
    e.close();
    this.countCodec("encoder", -1);
  }

  private startGeneral(): MixEncoder {
    const g = this.newEncoder();
    g.on("packet", (p, n, tick) => {
      for (const m of this.members.values()) if (m.route.get(tick) === "general") m.onPacket(p, n, tick);
    });
    g.on("died", () => this.encoderDied("general"));
    return g;
  }

  private encoderDied(who: string): void {
    metrics.ffmpegRestarts.inc({ role: "audio-encoder" });
    log.warn("audio encoder died; replacing it", { listener: who });
  }

  private startDecoder(m: Member): MixDecoder {
    this.countCodec("decoder", 1);
    if (this.engine !== "ffmpeg") {
      const dec = new InProcessOpusDecoder();
      dec.on("samples", (s) => m.pcm.push(s));
      return (m.decoder = dec);
    }
    const dec = new OpusDecoder(this.s.ffmpegPath);
    m.decoder = dec;
    dec.on("pcm", (d) => m.pcm.pushBytes(d));
    dec.on("exit", () => {
      if (!this.members.has(m.id) || m.decoder !== dec) return;
      metrics.ffmpegRestarts.inc({ role: "audio-decoder" });
      const delay = (m.decoderRestarts ??= new Restarts()).failed();
      // The next packet after the policy's delay starts a new one; none while it keeps dying.
      m.decoderAllowedAt = delay === undefined ? Infinity : performance.now() + delay;
      if (delay === undefined) log.error("audio decoder keeps dying; this participant's sound is left out", { participant: m.id });
      else log.warn("audio decoder died; a packet after the restart delay starts a new one", { participant: m.id, inMs: delay });
      m.decoder = undefined;
      this.countCodec("decoder", -1);
    });
    return dec;
  }

  /** An Opus RTP packet from participant `id`. Late (reordered) packets are dropped. */
  pushRtp(id: string, rtp: { header: { sequenceNumber: number }; payload: Buffer }): void {
    const m = this.members.get(id);
    if (!m?.encoder) return; // not a speaker: its offer sends no audio, so nothing of it is decoded
    const seq = rtp.header.sequenceNumber;
    if (m.lastSeq !== undefined) {
      const delta = (seq - m.lastSeq + 0x10000) & 0xffff;
      if (delta === 0 || delta > 0x8000) return;
    }
    m.lastSeq = seq;
    if (!this.withinRate(m, opusPacketSamples(rtp.payload))) return;
    if (!m.decoder && m.decoderAllowedAt !== undefined && performance.now() < m.decoderAllowedAt) return;
    (m.decoder ?? this.startDecoder(m)).decode(rtp.payload);
  }

  private withinRate(m: Member, samples: number): boolean {
    const now = performance.now();
    m.budget = Math.min(AUDIO_BURST_SAMPLES, m.budget + ((now - m.budgetAt) * AUDIO_RATE_SAMPLES_PER_S) / 1000);
    m.budgetAt = now;
    if (samples > m.budget) {
      metrics.audioPacketsDropped.inc({ reason: "over_rate" });
      return false;
    }
    m.budget -= samples;
    return true;
  }

  /**
   * Listener `id` reports losing `fraction` of our audio: its own encoder adds in-band FEC for it;
   * the shared full-mix encoder follows the lossiest of the listeners on it.
   */
  setListenerLoss(id: string, fraction: number): void {
    const m = this.members.get(id);
    if (!m) return;
    m.lossPercent = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
    if (m.encoder instanceof InProcessOpusEncoder) m.encoder.setPacketLoss(m.lossPercent);
    if (this.general instanceof InProcessOpusEncoder) {
      let worst = 0;
      for (const x of this.members.values()) worst = Math.max(worst, x.lossPercent);
      this.general.setPacketLoss(worst);
    }
  }

  setMuted(id: string, muted: boolean): void {
    const m = this.members.get(id);
    if (m) m.muted = muted;
  }

  remove(id: string): void {
    const m = this.members.get(id);
    if (!m) return;
    this.members.delete(id);
    if (m.decoder) {
      m.decoder.close();
      this.countCodec("decoder", -1);
    }
    this.closeEncoder(m.encoder);
    if (m.voice.speaking) this.emit("speaking", id, false);
    this.speakerLevels.delete(id);
    if (this.floor.holder === id) {
      this.floor.release(id);
      this.emit("floor", undefined);
    }
    if (!this.members.size) {
      this.closeEncoder(this.general);
      this.general = undefined;
    }
  }

  /** Who is speaking now (the highlight's view: sustained voice, with hold). */
  get speaking(): string[] {
    return [...this.speakerLevels.keys()];
  }

  /** The active speaker (the speaker layout's large tile), if anyone has spoken. */
  get floorHolder(): string | undefined {
    return this.floor.holder;
  }

  /** Listeners currently served by their own mix-minus encoder (the talkers). */
  get talkers(): string[] {
    const now = performance.now();
    return [...this.members.values()].filter((m) => now - m.lastTalkAt < TALK_HOLD_MS).map((m) => m.id);
  }

  private onClock(t: Tick): void {
    if (t.catchingUp) metrics.audioTicksCaughtUp.inc();
    if (t.skipped) {
      metrics.audioTicksSkipped.inc({}, t.skipped);
      const now = performance.now();
      if (now - this.lastSkipLog > 5000) {
        this.lastSkipLog = now;
        log.warn("audio ticks skipped: the event loop stalled for longer than the mixer catches up", { skipped: t.skipped, catchUpMs: AUDIO_CATCH_UP_TICKS * 20 });
      }
    }
    this.tick(t.index, t.skipped, t.due);
  }

  private tick(tick: number, skipped: number, due: number): void {
    this.ticks++;
    // Ticks lost to an event-loop stall are dropped from every input, or they would stay as delay.
    if (skipped) for (const m of this.members.values()) m.pcm.discard(skipped * TICK_SAMPLES);
    const now = performance.now();
    const blocks: (Int16Array | undefined)[] = [];
    for (const m of this.members.values()) {
      m.hasBlock = m.pcm.take(m.block) && !m.muted;
      if (!m.hasBlock && m.decoder) metrics.audioUnderruns.inc();
      const level = m.hasBlock ? blockLevelDb(m.block) : -Infinity;
      if (level > TALK_THRESHOLD_DB) m.lastTalkAt = now;
      const changed = !!m.encoder && m.voice.push(level, now);
      if (m.voice.speaking) this.speakerLevels.set(m.id, m.voice.level);
      else this.speakerLevels.delete(m.id);
      if (changed) this.emit("speaking", m.id, m.voice.speaking); // after `speaking` is current for listeners
      blocks.push(m.hasBlock ? m.block : undefined);
    }
    if (this.floor.update(this.speakerLevels, now)) this.emit("floor", this.floor.holder);
    sumInputs(blocks, this.sum);
    fullMix(this.sum, this.full);
    let anyGeneral = false;
    for (const m of this.members.values()) {
      const talking = now - m.lastTalkAt < TALK_HOLD_MS;
      if (talking) {
        mixMinus(this.sum, m.hasBlock ? m.block : undefined, m.out);
        // The route is set first: an in-process encoder hands its packet over before encode() returns.
        m.route.set(tick, "own");
        if (!m.encoder?.encode(m.out, tick)) m.route.delete(tick);
      } else {
        m.route.set(tick, "general");
        anyGeneral = true;
      }
      // Packets come back within a few ticks; 1 s of routes is plenty (after a skip, older ones too).
      if (skipped) for (const k of m.route.keys()) if (k < tick - 50) m.route.delete(k);
      m.route.delete(tick - 50);
    }
    if (anyGeneral) this.general?.encode(this.full, tick);
    if (this.listenerCount("fullMix")) this.emit("fullMix", this.full, skipped, due);
  }

  close(): void {
    this.clock.stop();
    for (const id of [...this.members.keys()]) this.remove(id);
    this.closeEncoder(this.general);
    this.general = undefined;
  }
}
