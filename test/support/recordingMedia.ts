// Reading recorded files the way a viewer would: decode them with ffmpeg and look at the
// pictures, the tones and the timestamps.
import { PALETTE, participant } from "../../fixtures/participants.ts";
import { gridLayout, type Rect } from "../../mixer/layout.ts";
import { runFfmpeg } from "./ffmpegRun.ts";
import { closestColor, meanRgb } from "./pixels.ts";
import { toneLevelsDb } from "./tones.ts";

export const FRAME_W = 640;
export const FRAME_H = 360;

/** Decodes the whole file and returns ffmpeg's complaints (empty when it decodes cleanly). */
export async function decodeErrors(file: string): Promise<string> {
  const r = await runFfmpeg(["-v", "error", "-i", file, "-f", "null", "-"]);
  return (r.code === 0 ? "" : `exit ${r.code}\n`) + r.stderr.trim();
}

/** One picture at `seconds`, scaled to 640x360 RGB. */
export async function frameAt(file: string, seconds: number): Promise<Buffer> {
  const seek = seconds > 0 ? ["-ss", seconds.toFixed(2)] : [];
  const r = await runFfmpeg(["-v", "error", ...seek, "-i", file, "-frames:v", "1", "-s", `${FRAME_W}x${FRAME_H}`, "-pix_fmt", "rgb24", "-f", "rawvideo", "-"]);
  if (r.code !== 0 || r.stdout.length !== FRAME_W * FRAME_H * 3) throw new Error(`no frame at ${seconds}s of ${file}: ${r.stderr}`);
  return r.stdout;
}

/** Colour names of the tiles `rects` (canvas pixels) in a 640x360 picture (centre of each tile). */
export function tileColors(frame: Buffer, rects: Rect[], canvas = { width: 1280, height: 720 }): (string | undefined)[] {
  const sx = FRAME_W / canvas.width;
  const sy = FRAME_H / canvas.height;
  return rects.map((t) =>
    closestColor(meanRgb(frame, FRAME_W, { x: (t.x + t.w * 0.35) * sx, y: (t.y + t.h * 0.3) * sy, w: t.w * 0.3 * sx, h: t.h * 0.4 * sy }), PALETTE),
  );
}

/** Colour names of the tiles of an n-tile grid in a 640x360 picture (centre of each tile). */
export function gridColors(frame: Buffer, n: number, canvas = { width: 1280, height: 720 }): (string | undefined)[] {
  return tileColors(frame, gridLayout(n, canvas.width, canvas.height), canvas);
}

export const colorsOf = (ids: string[]) => ids.map((id) => participant(id).color.name);

/** The audio as 48 kHz mono s16. */
export async function decodeAudio(file: string, from = 0, seconds?: number): Promise<Int16Array> {
  const r = await runFfmpeg(["-v", "error", "-ss", String(from), "-i", file, ...(seconds ? ["-t", String(seconds)] : []), "-vn", "-ac", "1", "-ar", "48000", "-f", "s16le", "-"]);
  if (r.code !== 0) throw new Error(`audio of ${file} does not decode: ${r.stderr}`);
  return new Int16Array(r.stdout.buffer, r.stdout.byteOffset, r.stdout.length / 2);
}

/** dB level of each participant's tone in the given audio. */
export function toneLevels(audio: Int16Array, ids: string[]): Record<string, number> {
  const levels = toneLevelsDb(audio, 48000, ids.map((id) => participant(id).toneHz));
  return Object.fromEntries(ids.map((id, i) => [id, levels[i]!]));
}

/** Packet timestamps (ms) of each stream, from the container, without decoding. */
export async function packetTimes(file: string): Promise<{ video: number[]; audio: number[] }> {
  const r = await runFfmpeg(["-v", "error", "-i", file, "-map", "0", "-c", "copy", "-f", "framecrc", "-"]);
  if (r.code !== 0) throw new Error(`cannot read packets of ${file}: ${r.stderr}`);
  const tb: number[] = [];
  const out = { video: [] as number[], audio: [] as number[] };
  for (const line of r.stdout.toString().split("\n")) {
    const t = /^#tb (\d+): (\d+)\/(\d+)/.exec(line);
    if (t) tb[Number(t[1])] = (1000 * Number(t[2])) / Number(t[3]);
    const p = /^(\d+),\s*(-?\d+),\s*(-?\d+),/.exec(line);
    if (p) (p[1] === "0" ? out.video : out.audio).push(Number(p[3]) * (tb[Number(p[1])] ?? 1));
  }
  return out;
}

/** Largest step between consecutive timestamps, ms. */
export function largestGap(times: number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  let gap = 0;
  for (let i = 1; i < sorted.length; i++) gap = Math.max(gap, sorted[i]! - sorted[i - 1]!);
  return gap;
}

/**
 * Times (ms, from the file's timestamps) at which tile `tile` of an n-tile grid turns from dark to
 * bright: every decoded frame is read with its exact presentation time.
 */
export async function videoOnsets(file: string, tile: number, n: number, canvas = { width: 1280, height: 720 }): Promise<number[]> {
  const W = 128;
  const H = 72;
  const r = await runFfmpeg(["-i", file, "-map", "0:v", "-vf", `scale=${W}:${H},format=gray,showinfo`, "-vsync", "0", "-f", "rawvideo", "-"]);
  if (r.code !== 0) throw new Error(`video of ${file} does not decode: ${r.stderr.slice(-500)}`);
  const pts = [...r.stderr.matchAll(/pts_time:\s*([\d.]+)/g)].map((m) => Number(m[1]) * 1000);
  const t = gridLayout(n, canvas.width, canvas.height)[tile]!;
  const x0 = Math.round(((t.x + t.w * 0.35) * W) / canvas.width);
  const x1 = Math.round(((t.x + t.w * 0.65) * W) / canvas.width);
  const y0 = Math.round(((t.y + t.h * 0.3) * H) / canvas.height);
  const y1 = Math.round(((t.y + t.h * 0.7) * H) / canvas.height);
  const luma: number[] = [];
  for (let f = 0; (f + 1) * W * H <= r.stdout.length && f < pts.length; f++) {
    let sum = 0;
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) sum += r.stdout[f * W * H + y * W + x]!;
    luma.push(sum / ((x1 - x0) * (y1 - y0)));
  }
  const mid = (Math.min(...luma) + Math.max(...luma)) / 2;
  return luma.flatMap((l, i) => (i > 0 && luma[i - 1]! < mid && l >= mid ? [pts[i]!] : []));
}
