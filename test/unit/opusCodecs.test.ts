// The audio path's Opus codecs: libopus in the server process, and the ffmpeg children they replace
// (OPUS_ENGINE=ffmpeg). Each side's packets are decoded by the other, so a room can switch engines
// with no change to what browsers receive; a hostile sender's garbage is dropped, not fatal.
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterEach, describe, expect, it } from "vitest";
import { OpusDecoder, TickedOpusEncoder } from "../../mixer/AudioCodecs.ts";
import { InProcessOpusDecoder, InProcessOpusEncoder, opusBuild } from "../../mixer/opusInProcess.ts";
import { metrics } from "../../telemetry/metrics.ts";
import { FFMPEG } from "../support/ffmpegRun.ts";
import { opusHasLbrr } from "../support/opusLbrr.ts";
import { s16leToInt16, toneLevelsDb } from "../support/tones.ts";

const BLOCK = 960;
const ROOT = path.resolve(import.meta.dirname, "../..");
const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

/** `blocks` 20 ms blocks of a sine at `hz`, −12 dBFS. */
function tone(hz: number, blocks: number): Int16Array[] {
  const out: Int16Array[] = [];
  for (let b = 0; b < blocks; b++) {
    const block = new Int16Array(BLOCK);
    for (let i = 0; i < BLOCK; i++) block[i] = Math.round(8192 * Math.sin((2 * Math.PI * hz * (b * BLOCK + i)) / 48000));
    out.push(block);
  }
  return out;
}

const bytesOf = (s: Int16Array) => Buffer.from(s.buffer, s.byteOffset, s.byteLength);

/** Decoded PCM after the codec's start-up (the first 200 ms), as samples. */
function settled(pcm: Buffer[]): Int16Array {
  return s16leToInt16(Buffer.concat(pcm)).subarray(9600);
}

function encodeInProcess(blocks: Int16Array[], lossPercent = 0): { packets: Buffer[]; ticks: number[] } {
  const enc = new InProcessOpusEncoder(32);
  enc.setPacketLoss(lossPercent);
  closers.push(() => enc.close());
  const packets: Buffer[] = [];
  const ticks: number[] = [];
  enc.on("packet", (p, samples, tick) => {
    expect(samples).toBe(BLOCK);
    packets.push(p);
    ticks.push(tick);
  });
  blocks.forEach((b, i) => expect(enc.encode(b, i + 1)).toBe(true));
  return { packets, ticks };
}

async function encodeWithFfmpeg(blocks: Int16Array[]): Promise<Buffer[]> {
  const enc = new TickedOpusEncoder(FFMPEG, 32);
  closers.push(() => enc.close());
  const packets: Buffer[] = [];
  const done = new Promise<void>((resolve) =>
    enc.on("packet", (p) => {
      packets.push(p);
      if (packets.length === blocks.length - 5) resolve(); // libopus holds its look-ahead
    }),
  );
  // At the mixer's pace: an encoder more than 200 ms behind drops blocks.
  for (const [i, b] of blocks.entries()) {
    enc.encode(b, i + 1);
    await new Promise((r) => setTimeout(r, 20));
  }
  await done;
  return packets;
}

async function decodeWithFfmpeg(packets: Buffer[]): Promise<Int16Array> {
  const dec = new OpusDecoder(FFMPEG);
  closers.push(() => dec.close());
  const pcm: Buffer[] = [];
  const want = (packets.length - 5) * BLOCK * 2;
  const done = new Promise<void>((resolve) =>
    dec.on("pcm", (d) => {
      pcm.push(d);
      if (pcm.reduce((n, b) => n + b.length, 0) >= want) resolve();
    }),
  );
  for (const p of packets) dec.decode(p);
  await done;
  return settled(pcm);
}

function decodeInProcess(packets: Buffer[]): Int16Array {
  const dec = new InProcessOpusDecoder();
  closers.push(() => dec.close());
  const pcm: Buffer[] = [];
  dec.on("samples", (s) => pcm.push(bytesOf(s)));
  for (const p of packets) dec.decode(p);
  expect(pcm.length).toBe(packets.length); // one block out per packet, synchronously
  return settled(pcm);
}

/** The tone's level, and the loudest of two frequencies it is not, in dBFS. */
function levels(pcm: Int16Array, hz: number): { tone: number; other: number } {
  const [t, a, b] = toneLevelsDb(pcm, 48000, [hz, hz * 1.5, hz * 2.37]);
  return { tone: t, other: Math.max(a, b) };
}

describe(`Opus in the server process (libopus, ${opusBuild})`, () => {
  it("encodes a block to one constant-size packet at once, tagged with its tick, and decodes it back", () => {
    const { packets, ticks } = encodeInProcess(tone(440, 50));
    expect(ticks).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    // 32 kbit/s hard CBR, as the ffmpeg child: 80 bytes per 20 ms.
    expect(new Set(packets.map((p) => p.length))).toEqual(new Set([80]));
    const l = levels(decodeInProcess(packets), 440);
    expect(l.tone).toBeGreaterThan(-16); // sent at −12 dBFS (a peak-amplitude reading)
    expect(l.tone - l.other).toBeGreaterThan(30);
  });

  it("its packets are decoded by ffmpeg, and ffmpeg's by it", async () => {
    const fromNode = await decodeWithFfmpeg(encodeInProcess(tone(660, 50)).packets);
    const a = levels(fromNode, 660);
    expect(a.tone).toBeGreaterThan(-16);
    expect(a.tone - a.other).toBeGreaterThan(30);

    const fromFfmpeg = decodeInProcess(await encodeWithFfmpeg(tone(330, 50)));
    const b = levels(fromFfmpeg, 330);
    expect(b.tone).toBeGreaterThan(-16);
    expect(b.tone - b.other).toBeGreaterThan(30);
  });

  it("drops packets libopus rejects, counts them, and keeps decoding the sender's good ones", () => {
    const { packets } = encodeInProcess(tone(440, 40));
    const dec = new InProcessOpusDecoder();
    closers.push(() => dec.close());
    const pcm: Buffer[] = [];
    dec.on("samples", (s) => pcm.push(bytesOf(s)));
    const before = metrics.audioPacketsDropped.get({ reason: "undecodable" });
    // Code-3 packets whose frame count and lengths lie, a CELT TOC with a truncated body, and noise.
    const garbage = [Buffer.from([0xff, 0xff, 0xff]), Buffer.alloc(1500, 0xfc), Buffer.from([0x0b, 0x3f]), Buffer.from([0xfb, 0xff, 0xff, 0xff, 0xff])];
    for (let i = 0; i < packets.length; i++) {
      dec.decode(packets[i]);
      if (i % 4 === 0) for (const g of garbage) dec.decode(g);
    }
    expect(metrics.audioPacketsDropped.get({ reason: "undecodable" }) - before).toBeGreaterThanOrEqual(20);
    const l = levels(settled(pcm), 440);
    expect(l.tone).toBeGreaterThan(-20);
    // Closed: nothing more comes out, and nothing throws.
    dec.close();
    dec.decode(packets[0]);
  });

  it("refuses blocks that are not 20 ms, and anything after close", () => {
    const enc = new InProcessOpusEncoder(32);
    expect(enc.encode(new Int16Array(480), 1)).toBe(false);
    enc.close();
    expect(enc.encode(new Int16Array(BLOCK), 2)).toBe(false);
  });
});

/** `blocks` 20 ms blocks of something voice-like: a gliding pitch with two harmonics, its loudness swelling 2.5 times a second. */
function voice(blocks: number): Int16Array[] {
  const out: Int16Array[] = [];
  let phase = 0;
  for (let b = 0; b < blocks; b++) {
    const block = new Int16Array(BLOCK);
    for (let i = 0; i < BLOCK; i++) {
      const t = (b * BLOCK + i) / 48000;
      phase += (2 * Math.PI * (300 + 150 * Math.sin(2 * Math.PI * 3 * t))) / 48000;
      const swell = 0.55 + 0.45 * Math.sin(2 * Math.PI * 2.5 * t);
      block[i] = Math.round(8192 * swell * (Math.sin(phase) + 0.3 * Math.sin(2 * phase) + 0.2 * Math.sin(3 * phase)));
    }
    out.push(block);
  }
  return out;
}

const rmsDb = (s: Int16Array) => 10 * Math.log10(s.reduce((a, x) => a + x * x, 0) / s.length / 32768 ** 2);

describe("in-band FEC for a lossy listener", () => {
  it("carries a FEC copy of the last block in its packets once its listener reports loss, none before", () => {
    const lbrrShare = (packets: Buffer[]) => {
      const flags = packets.slice(10).map(opusHasLbrr);
      expect(flags.every((f) => f !== undefined), "SILK or hybrid packets (a layer that can carry FEC)").toBe(true);
      return flags.filter(Boolean).length / flags.length;
    };
    const clean = encodeInProcess(voice(150), 0).packets;
    const lossy = encodeInProcess(voice(150), 15).packets;
    expect(lbrrShare(clean)).toBe(0);
    expect(lbrrShare(lossy)).toBeGreaterThan(0.7);
    // Still hard CBR: the FEC is paid for inside the same 80 bytes, and the voice decodes as loud.
    expect(new Set(lossy.map((p) => p.length))).toEqual(new Set([80]));
    const a = decodeInProcess(clean).subarray(9600);
    const b = decodeInProcess(lossy).subarray(9600);
    expect(Math.abs(rmsDb(a) - rmsDb(b))).toBeLessThan(1.5);
  });
});

describe("codecs that come and go (every join and leave)", () => {
  it("give their libopus state back: 10,000 encoder + decoder pairs, and memory stays flat", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const settle = async () => {
      for (let i = 0; i < 2; i++) {
        gc();
        await new Promise((r) => setTimeout(r, 20)); // the native addon frees in its finalizers, after a GC
      }
    };
    const rss: number[] = [];
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 2000; i++) {
        const enc = new InProcessOpusEncoder(32);
        const dec = new InProcessOpusDecoder();
        enc.on("packet", (p) => dec.decode(p));
        if (i % 200 === 0) enc.encode(new Int16Array(BLOCK), i);
        enc.close();
        dec.close();
      }
      await settle();
      rss.push(process.memoryUsage().rss);
    }
    // A pair holds about 60 KB: 2,000 pairs a round that were never freed would add ~120 MB a round.
    expect((rss[4]! - rss[1]!) / 1e6).toBeLessThan(30);
  });
});

describe("Opus on a platform without the native addon (the binding's WebAssembly build)", () => {
  it("loads, and a tone survives the round trip", async () => {
    // A fresh process: the binding picks its build once, when it is first loaded.
    const script = `
      const { InProcessOpusDecoder, InProcessOpusEncoder, opusBuild } = await import("./mixer/opusInProcess.ts");
      const enc = new InProcessOpusEncoder(32), dec = new InProcessOpusDecoder();
      const out = [];
      enc.on("packet", (p) => dec.decode(p));
      dec.on("samples", (s) => out.push(Buffer.from(s.buffer)));
      for (let b = 0; b < 50; b++) enc.encode(new Int16Array(960).map((_, i) => Math.round(8192 * Math.sin((2 * Math.PI * 440 * (b * 960 + i)) / 48000))), b);
      console.log(JSON.stringify({ build: opusBuild, pcm: Buffer.concat(out).toString("base64") }));`;
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: ROOT, env: { ...process.env, OPUS_FORCE_WASM: "1" }, maxBuffer: 8 << 20,
    });
    const r = JSON.parse(stdout.trim().split("\n").pop()!) as { build: string; pcm: string };
    expect(r.build).toBe("wasm");
    const l = levels(settled([Buffer.from(r.pcm, "base64")]), 440);
    expect(l.tone).toBeGreaterThan(-16);
    expect(l.tone - l.other).toBeGreaterThan(30);
  });
});
