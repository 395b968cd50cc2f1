// A rung's encoder makes a keyframe on request from the running encoder, in VP8 and H.264, in
// process (FFmpeg's libraries: the frame's picture type) and as an ffmpeg child (the request rides
// in the next frame's Matroska timestamp); a set of rungs adds and drops rungs without restarting
// the ones already running; and a child that dies is replaced, starting on a keyframe.
import { afterEach, describe, expect, it } from "vitest";
import { CompositeEncoder } from "../../mixer/CompositeEncoder.ts";
import { liveFfmpegProcesses } from "../../mixer/FfmpegProcess.ts";
import { LibRungEncoder } from "../../mixer/LibRungEncoder.ts";
import { RungEncoder, type EncodedFrame, type VideoCodec, type VideoEngine } from "../../mixer/RungEncoder.ts";
import { matroskaFrameHeader, signalledTimestamp } from "../../mixer/rawMatroska.ts";
import { waitFor } from "../support/call.ts";
import { FFMPEG } from "../support/ffmpegRun.ts";

const W = 320;
const H = 180;
const settings = (codec: VideoCodec, videoEngine: VideoEngine = "ffmpeg") => ({ ffmpegPath: FFMPEG, videoEngine, codec, width: W, height: H, fps: 30, kbps: 300, keyframeIntervalS: 60, keyframeMinIntervalMs: 0 });
const engines = ["library", "ffmpeg"] as const;
const ladder = [
  { width: W, height: H, kbps: 300 },
  { width: 160, height: 90, kbps: 100 },
];

/** A canvas that changes every tick (a moving bar), so no two frames are alike. */
function canvas(tick: number): Buffer {
  const c = Buffer.alloc((W * H * 3) / 2, 128);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) c[y * W + x] = ((x + tick * 4) % W) < 40 ? 235 : 16 + ((x * y) % 64);
  return c;
}

const until = (what: string, check: () => boolean) => waitFor(what, check, 8000);

/**
 * Feeds ticks [from, to) at 30 fps; `each` runs before each tick is encoded. Returns the ticks the
 * encoder took (it skips a canvas while its child is still starting and two are queued already).
 */
async function feed(encode: (c: Buffer, tick: number) => boolean, from: number, to: number, each?: (tick: number) => void): Promise<number[]> {
  const taken: number[] = [];
  for (let t = from; t < to; t++) {
    each?.(t);
    if (encode(canvas(t), t)) taken.push(t);
    await new Promise((r) => setTimeout(r, 33));
  }
  return taken;
}

afterEach(() => {
  for (const p of liveFfmpegProcesses()) if (p.role === "composite-encoder") p.close();
});

describe("keyframe signal", () => {
  it("stamps every frame even and a requested keyframe odd, in 10 µs units, with the header's size right", () => {
    expect(signalledTimestamp(0, 30, true)).toBe(0); // the first frame is a keyframe anyway
    expect(signalledTimestamp(1, 30, false)).toBe(3334);
    expect(signalledTimestamp(1, 30, true)).toBe(3335);
    expect(signalledTimestamp(3, 30, false) % 2).toBe(0);
    const h = matroskaFrameHeader(3335, 1000);
    // Cluster id, an 8-byte size covering the rest of the header and the frame.
    expect(h.subarray(0, 4).toString("hex")).toBe("1f43b675");
    expect(Number(h.readBigUInt64BE(4) & 0x00ffffffffffffffn)).toBe(h.length - 12 + 1000);
  });
});

describe.each(engines.flatMap((engine) => (["vp8", "h264"] as const).map((codec) => [engine, codec] as const)))("rung encoder (%s, %s)", (engine, codec) => {
  it("makes exactly the requested frames keyframes, from the same encoder", async () => {
    const e = engine === "ffmpeg" ? new RungEncoder(settings(codec, engine), 0, ladder[0]!) : new LibRungEncoder(settings(codec, engine), 0, ladder[0]!);
    const frames: EncodedFrame[] = [];
    e.on("frame", (f) => frames.push(f));
    try {
      const taken = await feed((c, t) => e.encode(c, t, () => {}), 0, 45, (t) => (t === 20 || t === 33) && e.requestKeyframe("test"));
      await until("every frame out", () => frames.length >= taken.length);
      expect(taken.length).toBeGreaterThan(38);
      expect(frames.map((f) => f.tick)).toEqual(taken);
      const keys = frames.filter((f) => f.isKeyframe).map((f) => f.tick);
      expect(keys).toEqual([0, 20, 33]);
      expect(e.spawns).toBe(1);
      if (codec === "h264") {
        // Every keyframe carries its SPS and PPS (Annex-B), so a receiver can start on any of them.
        for (const f of frames.filter((f) => f.isKeyframe)) expect(f.data.subarray(0, 5).toString("hex")).toBe("0000000167");
        expect(frames[0]!.data.subarray(5, 8).toString("hex")).toBe("42c01f"); // constrained baseline, level 3.1
      } else {
        expect(frames[0]!.data.subarray(3, 6).toString("hex")).toBe("9d012a"); // a VP8 keyframe's start code
      }
    } finally {
      e.close();
    }
  });
});

describe("in-process rung encoder's bitrate", () => {
  /** A canvas with a moving bar and fine noise everywhere: enough detail to need the whole budget. */
  function busyCanvas(tick: number): Buffer {
    const c = canvas(tick);
    let seed = tick * 7919;
    for (let i = 0; i < W * H; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      c[i] ^= seed & 15;
    }
    return c;
  }

  it("keeps to its target when ticks are left out (libvpx overshoots by half on timestamp gaps)", async () => {
    const e = new LibRungEncoder(settings("vp8", "library"), 0, ladder[0]!);
    let bytes = 0;
    let frames = 0;
    e.on("frame", (f) => {
      bytes += f.data.length;
      frames++;
    });
    try {
      for (let t = 0; t < 300; t++) {
        if (t % 10 === 5) continue; // a tick left out (the encoder was busy, or the overload policy)
        const out = new Promise((r) => e.once("frame", r));
        expect(e.encode(busyCanvas(t), t, () => {})).toBe(true);
        await out;
      }
      const kbps = (bytes * 8) / 10 / 1000; // 300 ticks: 10 s
      expect(kbps).toBeGreaterThan(300 * 0.7);
      expect(kbps).toBeLessThan(300 * 1.15);
    } finally {
      e.close();
    }
  });
});

describe.each(engines)("CompositeEncoder (%s)", (engine) => {
  it("adds and drops a rung without restarting the one running; a keyframe request touches one rung", async () => {
    const enc = new CompositeEncoder(settings("vp8", engine), ladder, [0]);
    const frames: (EncodedFrame & { rung: number })[] = [];
    enc.on("frame", (f) => frames.push(f));
    try {
      const encode = (c: Buffer, t: number) => enc.encode(c, t);
      const taken = await feed(encode, 0, 15);
      const topChild = liveFfmpegProcesses().filter((p) => p.role === "composite-encoder");
      expect(topChild).toHaveLength(engine === "ffmpeg" ? 1 : 0);
      enc.setRungs([0, 1]);
      taken.push(...(await feed(encode, 15, 35, (t) => t === 28 && enc.requestKeyframe("test", 1))));
      enc.setRungs([1]);
      taken.push(...(await feed(encode, 35, 45)));
      await until("frames out", () => frames.filter((f) => f.rung === 0 && f.tick === taken.at(-1)).length > 0);
      const top = frames.filter((f) => f.rung === 0);
      const low = frames.filter((f) => f.rung === 1);
      // The top rung: one child all along (a lingering rung keeps encoding), one keyframe, no gap.
      expect(top.filter((f) => f.isKeyframe).map((f) => f.tick)).toEqual([0]);
      expect(top.map((f) => f.tick)).toEqual(taken);
      expect(taken.filter((t) => t >= 15)).toHaveLength(30); // the new rung's start cost the top rung no frame
      if (engine === "ffmpeg") expect(topChild[0]!.alive).toBe(true);
      // The new rung starts on a keyframe and makes the one asked of it.
      expect(low[0]!.isKeyframe).toBe(true);
      expect(low.filter((f) => f.isKeyframe).map((f) => f.tick)).toEqual([low[0]!.tick, 28]);
      expect(enc.spawns).toBe(2);
    } finally {
      enc.close();
    }
  });

  it.runIf(engine === "ffmpeg")("replaces a child killed with -9, starting on a keyframe", async () => {
    const enc = new CompositeEncoder(settings("vp8", engine), ladder, [0]);
    const frames: EncodedFrame[] = [];
    enc.on("frame", (f) => frames.push(f));
    try {
      const encode = (c: Buffer, t: number) => enc.encode(c, t);
      await feed(encode, 0, 10);
      await until("first frames", () => frames.length >= 5);
      const [child] = liveFfmpegProcesses().filter((p) => p.role === "composite-encoder");
      process.kill(child!.pid!, "SIGKILL");
      await until("child gone", () => !child!.alive);
      await feed(encode, 10, 40);
      await until("frames after the kill", () => frames.some((f) => f.tick >= 35));
      const after = frames.filter((f) => f.tick >= 10);
      expect(after[0]!.isKeyframe).toBe(true);
      expect(enc.spawns).toBe(2);
    } finally {
      enc.close();
    }
  });
});
