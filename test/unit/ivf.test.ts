import { describe, expect, it } from "vitest";
import { FFMPEG, rng, runFfmpeg } from "../support/ffmpegRun.ts";
import { IvfReader, ivfFileHeader, ivfFrame, type IvfFrame } from "../../mixer/ivf.ts";

/** Random splits, mostly small (incl. 1-byte) so headers get cut everywhere. */
function chunks(buf: Buffer, seed: number): Buffer[] {
  const r = rng(seed);
  const res: Buffer[] = [];
  for (let off = 0; off < buf.length; ) {
    const n = r() < 0.3 ? 1 + Math.floor(r() * 4) : 1 + Math.floor(r() * 700);
    res.push(buf.subarray(off, off + n));
    off += n;
  }
  return res;
}

function readAll(buf: Buffer, seed: number): { reader: IvfReader; frames: IvfFrame[] } {
  const reader = new IvfReader();
  const frames: IvfFrame[] = [];
  for (const c of chunks(buf, seed)) frames.push(...reader.push(c));
  return { reader, frames };
}

function md5Lines(framemd5: string): string[] {
  return framemd5.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#"));
}

describe("ivf framing", () => {
  it("writes the 32-byte file header", () => {
    const h = ivfFileHeader({ width: 640, height: 480, frameCount: 7 });
    expect(h.length).toBe(32);
    expect(h.toString("latin1", 0, 4)).toBe("DKIF");
    expect(h.readUInt16LE(4)).toBe(0);
    expect(h.readUInt16LE(6)).toBe(32);
    expect(h.toString("latin1", 8, 12)).toBe("VP80");
    expect([h.readUInt16LE(12), h.readUInt16LE(14)]).toEqual([640, 480]);
    expect([h.readUInt32LE(16), h.readUInt32LE(20), h.readUInt32LE(24)]).toEqual([90000, 1, 7]);
    expect(() => ivfFileHeader({ width: 70000, height: 1 })).toThrow();
    expect(() => ivfFileHeader({ width: 1, height: 1, fourcc: "VP8" })).toThrow();
  });

  it("writes frame headers and parses them back across 1-byte chunks", () => {
    const key = Buffer.from([0x10, 1, 2, 3]);
    const inter = Buffer.from([0x31, 9]);
    const stream = Buffer.concat([
      ivfFileHeader({ width: 32, height: 16, timebaseDen: 30 }),
      ivfFrame(key, 0),
      ivfFrame(inter, 3000n),
      ivfFrame(Buffer.alloc(0), -1),
    ]);
    expect(stream.readUInt32LE(32)).toBe(4);
    expect(stream.readBigInt64LE(36)).toBe(0n);
    const reader = new IvfReader();
    const frames: IvfFrame[] = [];
    for (let i = 0; i < stream.length; i++) frames.push(...reader.push(stream.subarray(i, i + 1)));
    expect(reader.header).toEqual({ fourcc: "VP80", width: 32, height: 16, timebaseDen: 30, timebaseNum: 1 });
    expect(frames).toEqual([
      { data: key, pts: 0n, isKeyframe: true },
      { data: inter, pts: 3000n, isKeyframe: false },
      { data: Buffer.alloc(0), pts: -1n, isKeyframe: false },
    ]);
  });

  it("skips extra header bytes and rejects non-IVF input", () => {
    const h = Buffer.concat([ivfFileHeader({ width: 2, height: 2 }), Buffer.alloc(8, 0xee)]);
    h.writeUInt16LE(40, 6);
    const frames = new IvfReader().push(Buffer.concat([h, ivfFrame(Buffer.from([0]), 5)]));
    expect(frames.map((f) => f.pts)).toEqual([5n]);
    expect(() => new IvfReader().push(Buffer.alloc(32))).toThrow(/not an IVF/);
  });

  it("stays linear for a large frame fed byte by byte", () => {
    const big = Buffer.alloc(300_000, 7);
    const stream = Buffer.concat([ivfFileHeader({ width: 1, height: 1 }), ivfFrame(big, 1)]);
    const reader = new IvfReader();
    const frames: IvfFrame[] = [];
    const t0 = Date.now();
    for (let i = 0; i < stream.length; i++) frames.push(...reader.push(stream.subarray(i, i + 1)));
    expect(Date.now() - t0).toBeLessThan(5000); // O(n^2) concat would take minutes
    expect(frames).toHaveLength(1);
    expect(frames[0].data.equals(big)).toBe(true);
  });

  it("round-trips a real ffmpeg VP8 IVF stream", async () => {
    const enc = await runFfmpeg([
      "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-t", "1",
      "-c:v", "libvpx", "-b:v", "300k", "-f", "ivf", "pipe:1",
    ]);
    expect(enc.code, enc.stderr).toBe(0);

    for (const seed of [1, 2, 3]) {
      const { reader, frames } = readAll(enc.stdout, seed);
      expect(reader.header).toMatchObject({ fourcc: "VP80", width: 160, height: 120 });
      expect(frames).toHaveLength(25);
      expect(frames[0].isKeyframe).toBe(true);
      expect(frames.slice(1).some((f) => !f.isKeyframe)).toBe(true);
    }

    const { reader, frames } = readAll(enc.stdout, 4);
    const h = reader.header!;
    const rewritten = Buffer.concat([
      ivfFileHeader({ width: h.width, height: h.height, timebaseDen: h.timebaseDen, timebaseNum: h.timebaseNum }),
      ...frames.map((f) => ivfFrame(f.data, f.pts)),
    ]);
    const md5Args = ["-v", "error", "-f", "ivf", "-i", "pipe:0", "-f", "framemd5", "pipe:1"];
    const [orig, ours] = await Promise.all([runFfmpeg(md5Args, enc.stdout), runFfmpeg(md5Args, rewritten)]);
    expect(ours.code, ours.stderr).toBe(0);
    expect(ours.stderr).toBe("");
    const lines = md5Lines(ours.stdout.toString());
    expect(lines).toHaveLength(25);
    // Same decoded pictures and timestamps as decoding ffmpeg's own file.
    expect(lines).toEqual(md5Lines(orig.stdout.toString()));
  });
});
