// The baseline: ffmpeg alone doing the mixer's media work in one process, no Node, no WebRTC.
// n looped real-time VP8 inputs, each scaled+padded to its tile exactly like TileDecoder,
// composed into the canvas, encoded once with CompositeEncoder's libvpx settings; the n Opus
// inputs amixed and encoded once with libopus. Output is discarded (-f null).
// Composition: "xstack" (default) copies tiles, with black filler inputs for uncovered areas;
// "overlay" chains overlay filters on a black canvas, which in ffmpeg 4.1 costs ~0.2 cores
// per full 720p frame (it blends per pixel) and so makes a much heavier baseline.
import type { ChildProcess } from "node:child_process";
import { VP8_CPU_USED } from "../mixer/CompositeEncoder.ts";
import { FFMPEG_MALLOC_ENV } from "../mixer/FfmpegProcess.ts";
import { gridLayout, type Rect } from "../mixer/layout.ts";
import type { Config } from "../server/config.ts";
import path from "node:path";
import { spawnGroup, reapGroup } from "./children.ts";
import type { LibsAloneSettings } from "./libsAlone.ts";

/** vp8 / h264: every receiver on that codec at the top rung; mixed: VP8, half the receivers on the half-size rung. */
export type BenchCodec = "vp8" | "h264" | "mixed";

/** The server's own encode settings, so the baseline encodes exactly what the server does. */
export type EncodeSettings = Pick<Config, "width" | "height" | "fps" | "videoKbps" | "audioKbps" | "keyframeIntervalS" | "vp8CpuUsed"> & {
  codec?: BenchCodec;
  /** The half-size rung (mixed). */
  half?: { width: number; height: number; kbps: number };
};

/** The same encoder settings as CompositeEncoder's (realtime, one thread). */
function videoEncoder(codec: "vp8" | "h264", kbps: number, s: EncodeSettings): string[] {
  const rate = ["-b:v", `${kbps}k`, "-maxrate", `${kbps}k`, "-bufsize", `${kbps}k`, "-g", String(s.keyframeIntervalS * s.fps)];
  return codec === "h264"
    ? ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline", "-level", "3.1", "-threads", "1", ...rate, "-x264-params", "scenecut=0:sliced-threads=0"]
    : ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", String(s.vp8CpuUsed ?? VP8_CPU_USED), "-threads", "1", ...rate, "-auto-alt-ref", "0", "-lag-in-frames", "0", "-error-resilient", "1"];
}

/** Same filter as TileDecoder's. */
export function tileFilter(w: number, h: number): string {
  return `scale=${w}:${h}:force_original_aspect_ratio=decrease:flags=bilinear,pad=${w}:${h}:(ow-iw)/2:(oh-ih)/2:color=black,format=yuv420p`;
}

export type Compose = "xstack" | "overlay";

/** The parts of the W x H canvas that no tile covers, as rectangles (horizontal bands). */
export function uncovered(tiles: Rect[], W: number, H: number): Rect[] {
  const ys = [...new Set([0, H, ...tiles.flatMap((t) => [t.y, t.y + t.h])])].sort((a, b) => a - b);
  const out: Rect[] = [];
  for (let i = 0; i + 1 < ys.length; i++) {
    const [y0, y1] = [ys[i], ys[i + 1]];
    let x = 0;
    for (const t of tiles.filter((t) => t.y <= y0 && t.y + t.h >= y1).sort((a, b) => a.x - b.x)) {
      if (t.x > x) out.push({ x, y: y0, w: t.x - x, h: y1 - y0 });
      x = Math.max(x, t.x + t.w);
    }
    if (x < W) out.push({ x, y: y0, w: W - x, h: y1 - y0 });
  }
  return out;
}

function videoGraph(n: number, s: EncodeSettings, compose: Compose): string[] {
  const rects = gridLayout(n, s.width, s.height);
  const graph = rects.map((r, i) => `[${i}:v]${tileFilter(r.w, r.h)}[t${i}]`);
  if (compose === "overlay") {
    graph.push(`color=black:s=${s.width}x${s.height}:r=${s.fps}[c0]`);
    rects.forEach((r, i) => graph.push(`[c${i}][t${i}]overlay=${r.x}:${r.y}:format=yuv420${i === n - 1 ? "[vout]" : `[c${i + 1}]`}`));
    return graph;
  }
  const fill = uncovered(rects, s.width, s.height);
  if (n === 1 && fill.length === 0) return [graph[0].replace("[t0]", "[vout]")];
  fill.forEach((r, i) => graph.push(`color=black:s=${r.w}x${r.h}:r=${s.fps},format=yuv420p[f${i}]`));
  const labels = [...rects.map((_, i) => `[t${i}]`), ...fill.map((_, i) => `[f${i}]`)].join("");
  const layout = [...rects, ...fill].map((r) => `${r.x}_${r.y}`).join("|");
  graph.push(`${labels}xstack=inputs=${n + fill.length}:layout=${layout}[vout]`);
  return graph;
}

export function baselineArgs(inputs: { video: string; audio: string }[], s: EncodeSettings, compose: Compose = "xstack"): string[] {
  const n = inputs.length;
  // FLV (the H.264 fixtures) stamps frames in ms and reports a 1 kHz rate: read them as the 30 fps they are.
  const loop = (f: string) => ["-stream_loop", "-1", "-re", ...(f.endsWith(".flv") ? ["-r", String(s.fps)] : []), "-i", f];
  const graph = videoGraph(n, s, compose);
  const audioIn = inputs.map((_, i) => `[${n + i}:a]`).join("");
  graph.push(n === 1 ? `${audioIn}anull[aout]` : `${audioIn}amix=inputs=${n}:duration=longest[aout]`);
  // mixed: the composed canvas also scaled to the half-size rung and encoded a second time, in the same process (as the server does).
  const half = s.codec === "mixed" && n > 1 && s.half ? s.half : undefined;
  if (half) graph[graph.length - 2] = graph[graph.length - 2]!.replace(/\[vout\]$/, "[vmix]") + `;[vmix]split=2[vout][vfull];[vfull]scale=${half.width}:${half.height}:flags=fast_bilinear[vhalf]`;
  const codec = s.codec === "h264" ? "h264" : "vp8";
  return [
    "-hide_banner", "-nostdin", "-loglevel", "error",
    ...inputs.flatMap((x) => loop(x.video)),
    ...inputs.flatMap((x) => loop(x.audio)),
    "-filter_complex", graph.join(";"),
    "-map", "[vout]", "-map", "[aout]",
    ...videoEncoder(codec, s.videoKbps, s),
    "-c:a", "libopus", "-b:a", `${s.audioKbps}k`, "-frame_duration", "20", "-application", "voip", "-ac", "1", "-ar", "48000",
    "-f", "null", "-progress", "pipe:1", "-nostats", "-",
    ...(half ? ["-map", "[vhalf]", ...videoEncoder("vp8", half.kbps, s), "-f", "null", "-"] : []),
  ];
}

export interface BaselineProcess {
  pid: number;
  /** Video frames encoded so far (from -progress, updated about twice a second). */
  frames(): number;
  stop(): Promise<void>;
}

/** Reads `frame=<n>` / `frames=<n>` progress lines of a baseline child. */
function progressFrames(child: ChildProcess, key: string): () => number {
  let frames = 0;
  let pending = "";
  child.stdout!.on("data", (d: Buffer) => {
    pending += d.toString();
    const lines = pending.split("\n");
    pending = lines.pop()!;
    for (const l of lines) if (l.startsWith(key)) frames = Number(l.slice(key.length));
  });
  return () => frames;
}

function baselineProcess(child: ChildProcess, key: string, what: string): BaselineProcess {
  const frames = progressFrames(child, key);
  let stderr = "";
  let stopping = false;
  child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  child.on("exit", (code, sig) => {
    if (!stopping) console.error(`baseline ${what} exited early (code ${code}, signal ${sig}): ${stderr.trim()}`);
  });
  return {
    pid: child.pid!,
    frames,
    async stop() {
      stopping = true;
      await reapGroup(child.pid!, child);
    },
  };
}

/**
 * The tile decoders' work alone: the bundled ffmpeg decoding the n cameras in real time, each scaled
 * and letterboxed to its tile exactly as a TileDecoder child does, the pictures discarded — the
 * decode half of "ffmpeg alone", against the server's tile decoder children (one per camera).
 */
export function startDecodeAlone(ffmpegPath: string, inputs: { video: string }[], s: EncodeSettings): BaselineProcess {
  const rects = gridLayout(inputs.length, s.width, s.height);
  const loop = (f: string) => ["-stream_loop", "-1", "-re", ...(f.endsWith(".flv") ? ["-r", String(s.fps)] : []), "-threads", "1", "-i", f];
  const args = [
    "-hide_banner", "-nostdin", "-loglevel", "error",
    ...inputs.flatMap((x) => loop(x.video)),
    ...rects.flatMap((r, i) => ["-map", `${i}:v`, "-vf", tileFilter(r.w, r.h), "-f", "null", ...(i === 0 ? ["-progress", "pipe:1", "-nostats"] : []), "-"]),
  ];
  const child = spawnGroup(ffmpegPath, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...FFMPEG_MALLOC_ENV } });
  return baselineProcess(child, "frame=", "decode alone");
}

/** The server's own libraries alone (bench/libsAlone.ts) on the same inputs and settings. */
export function startLibsAlone(inputs: { video: string; audio: string }[], s: EncodeSettings): BaselineProcess {
  const settings: LibsAloneSettings = {
    inputs: inputs.map((x) => ({ video: x.video, audio: x.audio })),
    codec: s.codec === "h264" ? "h264" : "vp8",
    width: s.width, height: s.height, fps: s.fps, kbps: s.videoKbps, audioKbps: s.audioKbps, keyframeIntervalS: s.keyframeIntervalS, vp8CpuUsed: s.vp8CpuUsed,
    half: s.codec === "mixed" && inputs.length > 1 ? s.half : undefined,
  };
  const child = spawnGroup(process.execPath, ["--import", "tsx", path.join(import.meta.dirname, "libsAlone.ts"), JSON.stringify(settings)], { stdio: ["ignore", "pipe", "pipe"] });
  return baselineProcess(child, "frames=", "libraries alone");
}

export function startBaseline(ffmpegPath: string, inputs: { video: string; audio: string }[], s: EncodeSettings, compose: Compose): BaselineProcess {
  // The same malloc settings as the server's ffmpeg children: the baseline is ffmpeg at its best.
  const env = { ...process.env, ...FFMPEG_MALLOC_ENV };
  const child: ChildProcess = spawnGroup(ffmpegPath, baselineArgs(inputs, s, compose), { stdio: ["ignore", "pipe", "pipe"], env });
  return baselineProcess(child, "frame=", "ffmpeg");
}
