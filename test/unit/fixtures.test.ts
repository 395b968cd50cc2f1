import { execFile } from "node:child_process";
import fs from "node:fs";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { generateFixtures, ffmpegPath } from "../../fixtures/generate.ts";
import {
  PARTICIPANTS,
  PALETTE,
  FIXTURE_WIDTH as W,
  FIXTURE_HEIGHT as H,
  FIXTURE_SAMPLE_RATE as SR,
  browserFixturePaths,
  fixturePaths,
} from "../../fixtures/participants.ts";
import { closestColor, isDark, meanRgb } from "../support/pixels.ts";
import { goertzelPower, s16leToInt16, toneLevelsDb } from "../support/tones.ts";

const run = promisify(execFile);
const TONES = PARTICIPANTS.map((p) => p.toneHz);

async function ffmpegOut(args: string[]): Promise<{ stdout: Buffer; stderr: string }> {
  const r = await run(ffmpegPath(), ["-hide_banner", "-nostdin", ...args], {
    encoding: "buffer",
    maxBuffer: 64 * 1024 * 1024,
  });
  return { stdout: r.stdout, stderr: r.stderr.toString() };
}

/** Decodes `n` frames of a video file to packed rgb24 frames. */
async function decodeRgb(file: string, n: number): Promise<Buffer[]> {
  const { stdout } = await ffmpegOut(["-i", file, "-frames:v", String(n), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]);
  const size = W * H * 3;
  expect(stdout.length).toBe(size * n);
  return Array.from({ length: n }, (_, i) => stdout.subarray(i * size, (i + 1) * size));
}

async function decodePcm(file: string): Promise<Int16Array> {
  const { stdout } = await ffmpegOut(["-i", file, "-f", "s16le", "-ac", "1", "-ar", String(SR), "-"]);
  return s16leToInt16(stdout);
}

/** Parses an IVF container: per frame, whether it is a VP8 keyframe and whether it is shown. */
function parseIvf(buf: Buffer): { key: boolean; shown: boolean }[] {
  expect(buf.toString("ascii", 0, 4)).toBe("DKIF");
  expect(buf.toString("ascii", 8, 12)).toBe("VP80");
  const frames: { key: boolean; shown: boolean }[] = [];
  let off = buf.readUInt16LE(6);
  while (off + 12 <= buf.length) {
    const size = buf.readUInt32LE(off);
    const b0 = buf[off + 12]!;
    frames.push({ key: (b0 & 1) === 0, shown: ((b0 >> 4) & 1) === 1 });
    off += 12 + size;
  }
  expect(off).toBe(buf.length);
  return frames;
}

function sine(n: number, freq: number, amp: number, phase = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = amp * Math.sin((2 * Math.PI * freq * i) / SR + phase);
  return out;
}

describe("tone helpers", () => {
  it("recovers the levels of a two-sine mixture within 1 dB", () => {
    const n = SR / 5; // 200 ms
    const a = sine(n, 600, 10 ** (-6 / 20));
    const b = sine(n, 1550, 10 ** (-24 / 20), 1.1);
    const mix = a.map((v, i) => v + b[i]!);
    const [la, lb, lc] = toneLevelsDb(mix, SR, [600, 1550, 1100]);
    expect(la).toBeCloseTo(-6, 0);
    expect(Math.abs(la! + 6)).toBeLessThan(1);
    expect(Math.abs(lb! + 24)).toBeLessThan(1);
    expect(lc!).toBeLessThan(-60);
  });

  it("reads a full-scale sine as ~0 dB and handles Int16 input", () => {
    expect(10 * Math.log10(goertzelPower(sine(4800, 1000, 1), SR, 1000))).toBeCloseTo(0, 1);
    const i16 = Int16Array.from(sine(4800, 900, 10 ** (-12 / 20)), (v) => Math.round(v * 32767));
    expect(Math.abs(toneLevelsDb(i16, SR, [900])[0]! + 12)).toBeLessThan(0.2);
    const buf = Buffer.alloc(4);
    buf.writeInt16LE(-1234, 0);
    buf.writeInt16LE(32767, 2);
    expect(Array.from(s16leToInt16(buf))).toEqual([-1234, 32767]);
  });
});

describe("participant fixtures", () => {
  beforeAll(async () => {
    await generateFixtures();
  }, 120_000);

  it("has 8 participants with distinct ids, colours and tones", () => {
    expect(PARTICIPANTS.map((p) => p.id)).toEqual(["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"]);
    expect(new Set(PALETTE.map((c) => c.name)).size).toBe(8);
    for (const a of TONES)
      for (const b of TONES) {
        if (a === b) continue;
        expect(Math.abs(a - b)).toBeGreaterThanOrEqual(150);
        for (const k of [2, 3]) expect(Math.abs(k * a - b)).toBeGreaterThanOrEqual(60);
      }
    for (const p of PARTICIPANTS) {
      const paths = [fixturePaths(p.id, "solid"), fixturePaths(p.id, "pattern")].flatMap((x) => [x.video, x.audio]);
      const browser = browserFixturePaths(p.id);
      for (const f of [...paths, browser.y4m, browser.wav]) expect(fs.existsSync(f), f).toBe(true);
    }
  });

  it.each(PARTICIPANTS)("solid video of $id decodes to its own colour", async (p) => {
    const [first, last] = await decodeRgb(fixturePaths(p.id, "solid").video, 60).then((f) => [f[0]!, f[59]!]);
    for (const frame of [first!, last!]) {
      const c = meanRgb(frame, W, { x: W / 2 - 4, y: H / 2 - 4, w: 8, h: 8 });
      expect(closestColor(c, PALETTE), `${p.id} centre ${c.map(Math.round)}`).toBe(p.color.name);
      expect(isDark(c)).toBe(false);
    }
  });

  it("solid IVF has 60 shown frames with a keyframe every 15 frames", async () => {
    const file = fixturePaths("p3", "solid").video;
    const frames = parseIvf(fs.readFileSync(file));
    expect(frames.length).toBe(60);
    expect(frames.every((f) => f.shown)).toBe(true);
    const keys = frames.flatMap((f, i) => (f.key ? [i] : []));
    expect(keys).toEqual([0, 15, 30, 45]);
    const { stderr } = await ffmpegOut(["-i", file, "-f", "null", "-"]);
    const counts = [...stderr.matchAll(/frame=\s*(\d+)/g)].map((m) => Number(m[1]));
    expect(counts.at(-1)).toBe(60);
  });

  it("pattern IVF is in the participant's hue, moves, and keys every 15 frames", async () => {
    const p = PARTICIPANTS[6]!;
    const file = fixturePaths(p.id, "pattern").video;
    const frames = parseIvf(fs.readFileSync(file));
    expect(frames.length).toBe(60);
    expect(frames.flatMap((f, i) => (f.key ? [i] : []))).toEqual([0, 15, 30, 45]);
    const [a, b] = await decodeRgb(file, 31).then((f) => [f[0]!, f[30]!]);
    let changed = 0;
    for (let i = 0; i < a!.length; i++) if (Math.abs(a![i]! - b![i]!) > 24) changed++;
    expect(changed / a!.length).toBeGreaterThan(0.02);
    // Whole-frame mean is a dimmed version of the participant colour (same RGB direction).
    const m = meanRgb(b!, W, { x: 0, y: 0, w: W, h: H });
    const c = p.color.rgb;
    const cos = (m[0] * c[0] + m[1] * c[1] + m[2] * c[2]) / (Math.hypot(...m) * Math.hypot(...c));
    expect(cos).toBeGreaterThan(0.98);
  });

  it.each(PARTICIPANTS)("audio of $id is its own tone at about -12 dBFS", async (p) => {
    for (const file of [fixturePaths(p.id, "solid").audio, browserFixturePaths(p.id).wav]) {
      const pcm = await decodePcm(file);
      expect(Math.abs(pcm.length - 2 * SR)).toBeLessThan(SR / 10);
      const window = pcm.subarray(SR / 2, SR / 2 + SR); // middle second
      const levels = toneLevelsDb(window, SR, TONES);
      const own = levels[PARTICIPANTS.indexOf(p)]!;
      expect(Math.abs(own + 12), `${file} own level ${own.toFixed(2)}`).toBeLessThanOrEqual(3);
      levels.forEach((l, i) => {
        if (TONES[i] !== p.toneHz) expect(own - l, `${file} vs ${TONES[i]} Hz`).toBeGreaterThanOrEqual(30);
      });
    }
  });
});
