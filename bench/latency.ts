// Mixing latency: how long a change in one participant's camera and microphone takes to reach
// another participant through the MCU, end to end (sender werift → server: RTP in, tile decode,
// compositor tick, VP8 encode / Opus decode, jitter buffer, mix, Opus encode → receiver werift +
// ffmpeg decode), on loopback.
//
// One "flip" sender (fixtures: flip.ivf / flip.ogg) shows black + silence for half a second, then
// white + a 2400 Hz tone for half a second, forever. The synthetic participant sends its frames and
// packets itself, in real time, so the send instant of every flip is known exactly. One receiver
// (a listener who never speaks; its camera is a normal pattern) decodes the composite and the mix:
//  - video delay: from sending the first frame of a new colour to the first decoded composite frame
//    whose flip-sender tile crossed the midpoint between black and white;
//  - audio delay: from the tone onset leaving the sender to the tone onset in the receiver's PCM
//    (Goertzel at 2400 Hz, 10 ms windows, -6 dB of the tone level). Both ends use the same
//    convention — a 20 ms packet's last sample is "at" the instant it is sent / its decoded chunk
//    is read — and the onset's offset inside its packet is calibrated by decoding flip.ogg the way
//    the receiver does, so the sender's own Opus lookahead and the detector's offset cancel.
// The receiver's ffmpeg decode (a few ms) is included, not subtracted: `details` reports it. The
// other participants send moving patterns and take 2 s turns talking (as in bench/cpu.ts), so the
// receiver gets the shared full-mix encoder. The flip sender's video clock drifts slowly against the
// server's so the compositor-tick phase is swept (see LatencyOptions.videoClockPpm); the spread of
// the video figures is mostly that phase (0..33 ms).
//
// Usage: node --import tsx bench/latency.ts [--participants 2,4] [--duration 20] [--warmup 4] [--size 1280x720]
//                                           [--video-clock-ppm 1500] [--audio-clock-ppm=0] [--json]
// (negative ppm values need the = form: --audio-clock-ppm=-1500)
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { generateFixtures } from "../fixtures/generate.ts";
import {
  FLIP_HALF_PACKETS, FLIP_TONE_HZ, FIXTURE_HEIGHT, FIXTURE_WIDTH, PARTICIPANTS,
  flipAudioOn, flipFixturePaths, flipVideoOn, fixturePaths, turnsAudioPath,
} from "../fixtures/participants.ts";
import { gridLayout, letterbox, type Rect } from "../mixer/layout.ts";
import { OggOpusWriter, OggPacketReader, isOpusHeaderPacket } from "../mixer/ogg.ts";
import { loadConfig } from "../server/config.ts";
import { SyntheticParticipant, VIEW_H, VIEW_W } from "../test/support/SyntheticParticipant.ts";
import { quantile, toneEnvelope, toneOnsets } from "../test/support/tones.ts";

export interface LatencyStats {
  /** Milliseconds. */
  median: number;
  p90: number;
  p95: number;
  /** Flips measured. */
  n: number;
}

export interface LatencyResult {
  video: LatencyStats;
  audio: LatencyStats;
  /** median video − median audio, ms: > 0 means the picture lags the sound. */
  avOffsetMs: number;
  details: {
    /** Room size measured (participants, but at least 2). */
    participants: number;
    durationS: number;
    /** Flips sent in the window vs matched at the receiver. */
    videoFlipsSent: number;
    audioOnsetsSent: number;
    /** Video: from sending the flip to reassembling the composite frame that shows it (before the receiver's decode). */
    videoArrival: LatencyStats;
    /** The receiver's ffmpeg VP8 decode + scale (decoded frame read − frame reassembled), ms. */
    receiverVideoDecodeMs: number;
    /** Audio delay from the arrival time of the chunk holding the onset (no smoothing of the receiver's PCM clock). */
    audioPerChunk: LatencyStats;
    /** Where the tone onset lies after the start of its first packet in flip.ogg as decoded (Opus lookahead + detector), ms. */
    audioOnsetCalibrationMs: number;
    /** Spread of the receiver's PCM clock (p95 − p5 of chunk arrival − stream position), ms: bursts in the decoded audio. */
    pcmArrivalJitterMs: number;
    /** Black and white levels of the flip tile at the receiver (mean luma, 0..255). */
    tileLevels: [number, number];
    /** The flip sender's tile in the canvas. */
    tile: Rect;
    videoClockPpm: number;
    audioClockPpm: number;
    /** Server counters over the window: mixer ticks an input had no audio for (jitter buffer empty or prefilling), compositor ticks skipped. */
    serverAudioUnderruns: number;
    serverLateCompositorTicks: number;
    videoSamples: number[];
    audioSamples: number[];
    warnings: string[];
  };
}

export interface LatencyOptions {
  url: string;
  room: string;
  /** Everyone in the room, flip sender and receiver included (1 is measured as 2). */
  participants: number;
  durationS: number;
  /** Seconds after everyone joined before measuring (decoders started, keyframes through). */
  warmupS?: number;
  /**
   * The flip sender's video clock runs this much slow (parts per million; default 1500). A camera
   * locked to the server's 30 fps clock would always hit the same phase of the compositor tick, so
   * the result would hang on one random phase; this drift sweeps every phase in ~22 s, as a real
   * camera's clock does over a call.
   */
  videoClockPpm?: number;
  /**
   * The same for the sender's 20 ms audio clock (default 0: locked to the server's mixer clock, as a
   * real microphone is within a 20 s window, ~50 ppm apart). A non-zero drift sweeps the mixer-tick
   * phase but also drains (> 0, sender slow) or fills (< 0, sender fast) the server's jitter buffer,
   * which never sheds depth on its own (mixer/pcmBuffer.ts): see the report's notes.
   */
  audioClockPpm?: number;
  /** The server's OUTPUT_SIZE (the canvas the tile layout refers to). */
  size?: string;
  log?: (line: string) => void;
}

const SR = 48000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const withTimeout = <T>(p: Promise<T>, ms: number) => Promise.race([p, sleep(ms).then(() => undefined)]);

function stats(xs: number[]): LatencyStats {
  return { median: quantile(xs, 0.5), p90: quantile(xs, 0.9), p95: quantile(xs, 0.95), n: xs.length };
}

function s16(buf: Buffer): Int16Array {
  const out = new Int16Array(buf.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = buf.readInt16LE(i * 2);
  return out;
}

/**
 * Where the onset detector puts the tone onset in flip.ogg decoded as the receiver decodes (raw
 * packets in Ogg pages with pre-skip 0, ffmpeg), in samples after the start of the first tone packet.
 */
function calibrateAudioOnset(ffmpegPath: string, oggFile: string): number {
  const packets = new OggPacketReader().push(fs.readFileSync(oggFile)).filter((p) => !isOpusHeaderPacket(p.data)).map((p) => p.data);
  const ogg = new OggOpusWriter({ channels: 1 });
  const parts = [ogg.headers()];
  const loops = 3;
  for (let k = 0; k < loops * packets.length; k++) parts.push(ogg.packet(packets[k % packets.length], 960));
  const pcm = s16(execFileSync(ffmpegPath, ["-hide_banner", "-nostdin", "-loglevel", "error", "-f", "ogg", "-i", "pipe:0", "-f", "s16le", "-ar", "48000", "-ac", "1", "pipe:1"], {
    input: Buffer.concat(parts), maxBuffer: 64 << 20,
  }));
  const firstTone: number[] = [];
  for (let k = 1; k < loops * packets.length; k++) if (flipAudioOn(k % packets.length) && !flipAudioOn((k - 1) % packets.length)) firstTone.push(k);
  const onsets = toneOnsets(toneEnvelope(pcm, FLIP_TONE_HZ));
  const offs = firstTone.map((k) => onsets.find((s) => s > k * 960 - 960 && s < (k + FLIP_HALF_PACKETS) * 960)).filter((s): s is number => s !== undefined)
    .map((s, i) => s - firstTone[i] * 960);
  if (offs.length < firstTone.length - 1) throw new Error(`calibration: found ${offs.length} of ${firstTone.length} tone onsets in ${oggFile}`);
  return quantile(offs, 0.5);
}

/** Centre half (each way) of the flip sender's picture in the receiver's VIEW_W x VIEW_H frame. */
function probeRect(tile: Rect, canvasW: number, canvasH: number): Rect {
  const pic = letterbox(FIXTURE_WIDTH, FIXTURE_HEIGHT, tile.w, tile.h);
  const sx = VIEW_W / canvasW;
  const sy = VIEW_H / canvasH;
  return {
    x: Math.round((tile.x + pic.x + pic.w * 0.25) * sx), y: Math.round((tile.y + pic.y + pic.h * 0.25) * sy),
    w: Math.max(1, Math.round(pic.w * 0.5 * sx)), h: Math.max(1, Math.round(pic.h * 0.5 * sy)),
  };
}

function meanLuma(rgb: Buffer, r: Rect): number {
  let acc = 0;
  for (let y = r.y; y < r.y + r.h; y++) {
    let o = (y * VIEW_W + r.x) * 3;
    for (let x = 0; x < r.w; x++, o += 3) acc += 0.299 * rgb[o] + 0.587 * rgb[o + 1] + 0.114 * rgb[o + 2];
  }
  return acc / (r.w * r.h);
}

/** Sum of a Prometheus counter over its labels in GET /metrics (NaN if unavailable). */
async function counter(url: string, name: string): Promise<number> {
  try {
    const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
    let sum = 0;
    for (const line of text.split("\n")) {
      const m = /^(\S+?)(\{[^}]*\})? (\S+)$/.exec(line);
      if (m && m[1] === name) sum += Number(m[3]);
    }
    return sum;
  } catch {
    return NaN;
  }
}

/** The tile of the first joiner as the server reports it (GET /api/rooms), if it does. */
async function serverTile(url: string, room: string, participantId: string): Promise<Rect | undefined> {
  try {
    const rooms = (await (await fetch(`${url}/api/rooms`, { signal: AbortSignal.timeout(2000) })).json()) as
      { id: string; layout: { participantId: string; rect: Rect }[] }[];
    return rooms.find((r) => r.id === room)?.layout.find((l) => l.participantId === participantId)?.rect;
  } catch {
    return undefined;
  }
}

export async function measureLatency(opts: LatencyOptions): Promise<LatencyResult> {
  if (!Number.isInteger(opts.participants) || opts.participants < 1) throw new Error("measureLatency: participants must be an integer >= 1");
  const warnings: string[] = [];
  // Someone has to receive: a room of one is measured as a room of two.
  const n = Math.max(2, opts.participants);
  if (n !== opts.participants) warnings.push(`a room of ${opts.participants} has no receiver: measured with ${n} (flip sender + receiver)`);
  const warmupS = opts.warmupS ?? 4;
  const sizeMatch = /^(\d+)x(\d+)$/.exec(opts.size ?? "1280x720");
  if (!sizeMatch) throw new Error(`measureLatency: size must be WxH, got ${opts.size}`);
  const [canvasW, canvasH] = [Number(sizeMatch[1]), Number(sizeMatch[2])];
  const log = opts.log ?? (() => {});
  await generateFixtures();
  const ffmpegPath = loadConfig().ffmpegPath;
  const flip = flipFixturePaths();
  const calib = calibrateAudioOnset(ffmpegPath, flip.audio);

  // What happens, in performance.now() ms.
  const videoSent: { at: number; on: boolean }[] = [];
  const audioSent: { at: number; index: number; on: boolean }[] = [];
  /** Decoded composite frames at the receiver: mean luma of the flip tile's centre. */
  const frames: { at: number; receivedAt: number | undefined; luma: number }[] = [];
  let probe: Rect | undefined;
  const pcmChunks: Buffer[] = [];
  const pcmArrivals: { endSample: number; at: number }[] = [];
  let pcmBytes = 0;
  let recording = false;

  const sender = new SyntheticParticipant({
    url: opts.url, room: opts.room, name: "latency-flip", ...flip, decode: false,
    videoClockScale: 1 + (opts.videoClockPpm ?? 1500) * 1e-6,
    audioClockScale: 1 + (opts.audioClockPpm ?? 0) * 1e-6,
    onVideoSent: (i, at) => recording && videoSent.push({ at, on: flipVideoOn(i) }),
    onAudioSent: (i, at) => recording && audioSent.push({ at, index: i, on: flipAudioOn(i) }),
  });
  const parts: SyntheticParticipant[] = [sender];
  try {
    await sender.join();
    for (let k = 1; k < n; k++) {
      const fx = PARTICIPANTS[k % PARTICIPANTS.length];
      const isReceiver = k === 1;
      const p = new SyntheticParticipant({
        url: opts.url, room: opts.room, name: isReceiver ? "latency-receiver" : `latency-${k}`,
        video: fixturePaths(fx.id, "pattern").video,
        // Others take 2 s turns talking (as in the CPU benchmark); the receiver is a listener who never speaks.
        audio: turnsAudioPath(fx.id),
        silent: isReceiver,
        decode: isReceiver,
        ...(isReceiver
          ? {
              onDecodedFrame: (rgb: Buffer, at: number, receivedAt: number | undefined) => {
                if (recording && probe) frames.push({ at, receivedAt, luma: meanLuma(rgb, probe) });
              },
              onPcm: (d: Buffer, at: number) => {
                if (!recording) return;
                pcmChunks.push(d);
                pcmBytes += d.length;
                pcmArrivals.push({ endSample: pcmBytes >> 1, at });
              },
            }
          : {}),
      });
      parts.push(p);
      await p.join();
    }
    // Tile order is join order: the flip sender joined first.
    let tile = gridLayout(n, canvasW, canvasH)[0];
    const reported = await serverTile(opts.url, opts.room, sender.participantId);
    if (reported && (reported.x !== tile.x || reported.y !== tile.y || reported.w !== tile.w || reported.h !== tile.h)) {
      warnings.push(`server reports the flip tile at ${JSON.stringify(reported)}, gridLayout says ${JSON.stringify(tile)}; using the server's`);
      tile = reported;
    }
    probe = probeRect(tile, canvasW, canvasH);
    log(`  latency n=${n}: ${warmupS} s warm-up, then ${opts.durationS} s of flips (tile ${tile.w}x${tile.h}+${tile.x}+${tile.y})`);
    await sleep(warmupS * 1000);
    // Recording starts a little early so the first flips of the window have a "before".
    recording = true;
    await sleep(500);
    const m0 = await Promise.all([counter(opts.url, "mcu_audio_underruns_total"), counter(opts.url, "mcu_composite_late_ticks_total")]);
    const t0 = performance.now();
    await sleep(opts.durationS * 1000);
    const t1 = performance.now();
    const m1 = await Promise.all([counter(opts.url, "mcu_audio_underruns_total"), counter(opts.url, "mcu_composite_late_ticks_total")]);
    // Flips sent in the last second get time to arrive.
    await sleep(1000);
    recording = false;

    // ---- video
    const luma = frames.map((f) => f.luma);
    const lo = quantile(luma, 0.05);
    const hi = quantile(luma, 0.95);
    if (!(hi - lo > 100)) throw new Error(`the flip tile does not flip at the receiver (luma ${lo.toFixed(0)}..${hi.toFixed(0)} over ${frames.length} decoded frames)`);
    const mid = (lo + hi) / 2;
    const white = luma.map((l) => l > mid);
    const flips = videoSent.filter((e, i) => i > 0 && e.on !== videoSent[i - 1].on && e.at >= t0 && e.at < t1);
    const videoDelays: number[] = [];
    const arrivalDelays: number[] = [];
    const decodeMs: number[] = [];
    for (const f of flips) {
      // The first frame at or after the send that shows the new colour right after one that did not
      // (unambiguous for delays up to a whole cycle).
      const i = frames.findIndex((fr, k) => fr.at >= f.at && k > 0 && white[k] === f.on && white[k - 1] !== f.on);
      if (i < 0 || frames[i].at - f.at > 1000) {
        warnings.push(`video flip at +${(f.at - t0).toFixed(0)} ms not seen within 1 s`);
        continue;
      }
      videoDelays.push(frames[i].at - f.at);
      const rx = frames[i].receivedAt;
      if (rx !== undefined && rx >= f.at) {
        arrivalDelays.push(rx - f.at);
        decodeMs.push(frames[i].at - rx);
      }
    }

    // ---- audio
    const pcm = s16(Buffer.concat(pcmChunks));
    const env = toneEnvelope(pcm, FLIP_TONE_HZ);
    const rxOnsets = toneOnsets(env);
    // The receiver's PCM clock: stream position → wall time. Each chunk says "my last sample was
    // here at `at`"; a running median over ±1 s smooths out pipe bursts and scheduling jitter.
    const offsets = pcmArrivals.map((c) => c.at - (c.endSample / SR) * 1000);
    const wallOf = (sample: number, smooth: boolean): number => {
      const ci = pcmArrivals.findIndex((c) => c.endSample > sample);
      if (ci < 0) return NaN;
      if (!smooth) return pcmArrivals[ci].at - ((pcmArrivals[ci].endSample - sample) / SR) * 1000;
      const near = pcmArrivals.flatMap((c, k) => (Math.abs(c.endSample - sample) <= SR ? [offsets[k]] : []));
      return (sample / SR) * 1000 + quantile(near, 0.5);
    };
    const rxWall = rxOnsets.map((s) => ({ smooth: wallOf(s, true), chunk: wallOf(s, false) }));
    const onsetsSent = audioSent.filter((e, i) => i > 0 && e.on && !audioSent[i - 1].on && e.at >= t0 && e.at < t1);
    const audioDelays: number[] = [];
    const perChunk: number[] = [];
    for (const e of onsetsSent) {
      // Packet e was sent at e.at and ends there; the onset lies `calib` samples after its start.
      const sentWall = e.at - 20 + (calib / SR) * 1000;
      const r = rxWall.find((w) => w.smooth >= sentWall - 30);
      if (!r || r.smooth - sentWall > 1000) {
        warnings.push(`tone onset at +${(e.at - t0).toFixed(0)} ms not heard within 1 s`);
        continue;
      }
      audioDelays.push(r.smooth - sentWall);
      perChunk.push(r.chunk - sentWall);
    }
    if (frames.length && videoSent.length) {
      const fps = (frames.filter((f) => f.at >= t0 && f.at < t1).length / (t1 - t0)) * 1000;
      if (fps < 25) warnings.push(`receiver decoded only ${fps.toFixed(1)} fps`);
    }
    const video = stats(videoDelays);
    const audio = stats(audioDelays);
    return {
      video,
      audio,
      avOffsetMs: video.median - audio.median,
      details: {
        participants: n,
        durationS: opts.durationS,
        videoFlipsSent: flips.length,
        audioOnsetsSent: onsetsSent.length,
        videoArrival: stats(arrivalDelays),
        receiverVideoDecodeMs: quantile(decodeMs, 0.5),
        audioPerChunk: stats(perChunk),
        audioOnsetCalibrationMs: (calib / SR) * 1000,
        pcmArrivalJitterMs: quantile(offsets, 0.95) - quantile(offsets, 0.05),
        tileLevels: [lo, hi],
        tile,
        videoClockPpm: opts.videoClockPpm ?? 1500,
        audioClockPpm: opts.audioClockPpm ?? 0,
        serverAudioUnderruns: m1[0] - m0[0],
        serverLateCompositorTicks: m1[1] - m0[1],
        videoSamples: videoDelays.map((d) => Math.round(d * 10) / 10),
        audioSamples: audioDelays.map((d) => Math.round(d * 10) / 10),
        warnings,
      },
    };
  } finally {
    await Promise.all(parts.map((p) => withTimeout(p.close().catch(() => {}), 3000)));
  }
}

export function formatLatency(r: LatencyResult): string {
  const f = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : "-");
  const d = r.details;
  return [
    `n=${d.participants}: video ${f(r.video.median)} ms median, ${f(r.video.p95)} p95 (${r.video.n}/${d.videoFlipsSent} flips); ` +
      `audio ${f(r.audio.median)} ms median, ${f(r.audio.p95)} p95 (${r.audio.n}/${d.audioOnsetsSent} onsets); A/V offset ${f(r.avOffsetMs)} ms (video later if > 0)`,
    `  video: composite frame reassembled at the receiver after ${f(d.videoArrival.median)} ms median, + ${f(d.receiverVideoDecodeMs)} ms receiver decode; ` +
      `audio per chunk (unsmoothed) ${f(d.audioPerChunk.median)} ms median, ${f(d.audioPerChunk.p95)} p95; PCM arrival jitter ${f(d.pcmArrivalJitterMs)} ms; ` +
      `onset calibration ${f(d.audioOnsetCalibrationMs)} ms; tile luma ${d.tileLevels.map((v) => v.toFixed(0)).join("/")}; ` +
      `server: ${d.serverAudioUnderruns} audio underrun ticks, ${d.serverLateCompositorTicks} late compositor ticks; sender clock drift video ${d.videoClockPpm} / audio ${d.audioClockPpm} ppm`,
    ...d.warnings.slice(0, 10).map((w) => `  warning: ${w}`),
  ].join("\n");
}

async function main(): Promise<void> {
  const { installCleanup } = await import("./children.ts");
  const { startServerProcess } = await import("./server.ts");
  const { values: args } = parseArgs({
    options: {
      participants: { type: "string", default: "2,4" },
      duration: { type: "string", default: "20" },
      warmup: { type: "string", default: "4" },
      size: { type: "string", default: "1280x720" },
      "video-clock-ppm": { type: "string", default: "1500" },
      "audio-clock-ppm": { type: "string", default: "0" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (args.help) {
    console.log("usage: node --import tsx bench/latency.ts [--participants 2,4] [--duration 20] [--warmup 4] [--size 1280x720] [--video-clock-ppm 1500] [--audio-clock-ppm=0] [--json]");
    return;
  }
  const counts = args.participants.split(",").map((s) => Number(s.trim()));
  if (!counts.length || counts.some((c) => !Number.isInteger(c) || c < 1 || c > 16)) throw new Error("--participants: integers 1..16, e.g. 2,4");
  const durationS = Number(args.duration);
  const warmupS = Number(args.warmup);
  if (!(durationS > 0) || !(warmupS >= 0)) throw new Error("--duration/--warmup: seconds");
  installCleanup();
  await generateFixtures();
  const results: LatencyResult[] = [];
  for (const n of counts) {
    const server = await startServerProcess({ size: args.size, maxParticipants: n });
    try {
      const r = await measureLatency({ url: server.url, room: "latency", participants: n, durationS, warmupS, size: args.size,
        videoClockPpm: Number(args["video-clock-ppm"]), audioClockPpm: Number(args["audio-clock-ppm"]), log: console.log });
      results.push(r);
      console.log(formatLatency(r));
      if (server.logLines.length) console.log(`  server logged ${server.logLines.length} line(s), first: ${server.logLines[0].slice(0, 200)}`);
    } finally {
      await server.stop();
    }
  }
  if (args.json) console.log(JSON.stringify(results, null, 2));
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (isMain) {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(`latency failed: ${(e as Error).stack ?? e}`);
      process.exit(1);
    },
  );
}
