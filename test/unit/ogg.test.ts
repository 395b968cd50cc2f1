import { describe, expect, it } from "vitest";
import { FFMPEG, rng, runFfmpeg } from "../support/ffmpegRun.ts";
import {
  OggOpusWriter,
  OggPacketReader,
  isOpusHeaderPacket,
  oggCrc32,
  opusPacketSamples,
  type OggPacket,
} from "../../mixer/ogg.ts";

function readInChunks(buf: Buffer, seed: number): OggPacket[] {
  const r = rng(seed);
  const reader = new OggPacketReader();
  const packets: OggPacket[] = [];
  for (let off = 0; off < buf.length; ) {
    const n = r() < 0.3 ? 1 + Math.floor(r() * 4) : 1 + Math.floor(r() * 600);
    packets.push(...reader.push(buf.subarray(off, off + n)));
    off += n;
  }
  return packets;
}

/** Split a byte stream into pages using the header fields only. */
function splitPages(buf: Buffer): Buffer[] {
  const pages: Buffer[] = [];
  for (let off = 0; off < buf.length; ) {
    const nseg = buf[off + 26];
    let len = 27 + nseg;
    for (let i = 0; i < nseg; i++) len += buf[off + 27 + i];
    pages.push(buf.subarray(off, off + len));
    off += len;
  }
  return pages;
}

/** Hand-built page, for cases the writer never produces (packets spanning pages). */
function page(flags: number, granule: bigint, seq: number, lacing: number[], body: Buffer): Buffer {
  const h = Buffer.alloc(27 + lacing.length);
  h.write("OggS", 0, "latin1");
  h[5] = flags;
  h.writeBigInt64LE(granule, 6);
  h.writeUInt32LE(42, 14);
  h.writeUInt32LE(seq, 18);
  h[26] = lacing.length;
  Buffer.from(lacing).copy(h, 27);
  const p = Buffer.concat([h, body]);
  p.writeUInt32LE(oggCrc32(p), 22);
  return p;
}

/** Goertzel power of `x` at frequency f. */
function goertzel(x: Int16Array, f: number, fs: number): number {
  const coeff = 2 * Math.cos((2 * Math.PI * f) / fs);
  let s1 = 0;
  let s2 = 0;
  for (const v of x) {
    const s0 = v + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return s1 * s1 + s2 * s2 - coeff * s1 * s2;
}

function bytes(n: number, seed: number): Buffer {
  const r = rng(seed);
  return Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)));
}

describe("ogg crc", () => {
  it("matches the CRC-32 (poly 04c11db7, init 0, no xorout) check value", () => {
    // CRC-32/CKSUM check is 0x765e7680 with xorout ffffffff; without it:
    expect(oggCrc32(Buffer.from("123456789"))).toBe(0x89a1897f); // = 0x765e7680 ^ 0xffffffff
    expect(oggCrc32(Buffer.alloc(0))).toBe(0);
  });

  it("verifies every page ffmpeg writes", async () => {
    const enc = await runFfmpeg([
      "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1",
      "-c:a", "libopus", "-ac", "1", "-f", "ogg", "pipe:1",
    ]);
    expect(enc.code, enc.stderr).toBe(0);
    const pages = splitPages(enc.stdout);
    expect(pages.length).toBeGreaterThanOrEqual(3);
    for (const p of pages) {
      const copy = Buffer.from(p);
      copy.writeUInt32LE(0, 22);
      expect(oggCrc32(copy)).toBe(p.readUInt32LE(22));
    }
  });
});

describe("ogg lacing and page reassembly", () => {
  it("laces 255- and 510-byte packets with a trailing 0 and round-trips them", () => {
    const w = new OggOpusWriter({ serial: 7 });
    const sizes = [0, 1, 254, 255, 256, 510, 511, 1000, 65024];
    const pkts = sizes.map((n, i) => bytes(n, i + 1));
    const pages = pkts.map((p) => w.packet(p, 960));
    const lacing = (pg: Buffer) => [...pg.subarray(27, 27 + pg[26])];
    expect(lacing(pages[0])).toEqual([0]);
    expect(lacing(pages[2])).toEqual([254]);
    expect(lacing(pages[3])).toEqual([255, 0]);
    expect(lacing(pages[5])).toEqual([255, 255, 0]);
    expect(lacing(pages[6])).toEqual([255, 255, 1]);
    expect(pages[8][26]).toBe(255);
    expect(pages.map((pg) => pg.readUInt32LE(18))).toEqual(sizes.map((_, i) => i));
    expect(() => w.packet(Buffer.alloc(65025), 960)).toThrow(RangeError);

    const stream = Buffer.concat([w.headers(), ...pages]);
    for (const seed of [1, 2, 3]) {
      const got = readInChunks(stream, seed);
      expect(got.slice(0, 2).map((p) => isOpusHeaderPacket(p.data))).toEqual([true, true]);
      const audio = got.slice(2);
      expect(audio.map((p) => p.data.length)).toEqual(sizes);
      audio.forEach((p, i) => {
        expect(p.data.equals(pkts[i])).toBe(true);
        expect(p.granule).toBe(BigInt(960 * (i + 1)));
      });
    }
  });

  it("writes OpusHead (BOS) and OpusTags pages", () => {
    const w = new OggOpusWriter({ serial: 99, channels: 2, preSkip: 312, inputSampleRate: 16000 });
    const got = new OggPacketReader().push(w.headers());
    expect(got).toHaveLength(2);
    expect(got[0]).toMatchObject({ bos: true, eos: false, granule: 0n });
    const head = got[0].data;
    expect(head.toString("latin1", 0, 8)).toBe("OpusHead");
    expect([head[8], head[9], head.readUInt16LE(10), head.readUInt32LE(12), head[18]]).toEqual([1, 2, 312, 16000, 0]);
    expect(got[1].data.toString("latin1", 0, 8)).toBe("OpusTags");
    expect(got[1].bos).toBe(false);
    expect(new OggOpusWriter().packet(Buffer.from([0xf8]), 960, true)[5]).toBe(0x04);
  });

  it("reassembles packets continued across pages", () => {
    const a = bytes(700, 10);
    const b = bytes(10, 11);
    const c = bytes(510, 12);
    const stream = Buffer.concat([
      page(0, -1n, 0, [255, 255], a.subarray(0, 510)),
      page(1, 1920n, 1, [190, 10, 255, 255], Buffer.concat([a.subarray(510), b, c])),
      page(1 | 4, 2880n, 2, [0], Buffer.alloc(0)), // c is an exact multiple of 255
    ]);
    for (const seed of [5, 6]) {
      const got = readInChunks(stream, seed);
      expect(got.map((p) => p.data.length)).toEqual([700, 10, 510]);
      expect(got[0].data.equals(a) && got[1].data.equals(b) && got[2].data.equals(c)).toBe(true);
      expect(got.map((p) => p.granule)).toEqual([-1n, 1920n, 2880n]);
      expect(got.map((p) => p.eos)).toEqual([false, false, true]);
    }
  });

  it("drops a leading continuation fragment and rejects bad CRCs", () => {
    const got = new OggPacketReader().push(page(1, 960n, 5, [100, 3], bytes(103, 1)));
    expect(got.map((p) => p.data.length)).toEqual([3]);
    const bad = page(0, 0n, 0, [3], Buffer.from([1, 2, 3]));
    bad[bad.length - 1] ^= 1;
    expect(() => new OggPacketReader().push(bad)).toThrow(/CRC/);
  });
});

describe("opusPacketSamples", () => {
  const toc = (config: number, code: number) => (config << 3) | code;
  it.each([
    [toc(0, 0), 480], [toc(1, 0), 960], [toc(2, 0), 1920], [toc(3, 0), 2880],
    [toc(12, 0), 480], [toc(13, 0), 960], [toc(16, 0), 120], [toc(17, 0), 240],
    [toc(18, 0), 480], [toc(31, 0), 960], [toc(31, 1), 1920], [toc(3, 2), 5760],
  ])("TOC byte %i -> %i samples", (t, n) => {
    expect(opusPacketSamples(Buffer.from([t, 0, 0]))).toBe(n);
  });
  it("handles code 3 frame counts and malformed packets", () => {
    expect(opusPacketSamples(Buffer.from([toc(19, 3), 3]))).toBe(2880);
    expect(opusPacketSamples(Buffer.from([toc(16, 3), 0x80 | 48]))).toBe(5760);
    expect(opusPacketSamples(Buffer.from([toc(19, 3), 7]))).toBe(0); // 140 ms > 120 ms
    expect(opusPacketSamples(Buffer.from([toc(19, 3)]))).toBe(0);
    expect(opusPacketSamples(Buffer.alloc(0))).toBe(0);
  });
});

describe("ogg opus through ffmpeg", () => {
  it("reads ffmpeg's libopus output and re-wraps it into a decodable stream", async () => {
    const enc = await runFfmpeg([
      "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1",
      "-c:a", "libopus", "-ac", "1", "-f", "ogg", "pipe:1",
    ]);
    expect(enc.code, enc.stderr).toBe(0);

    let audio: OggPacket[] = [];
    let head: Buffer | undefined;
    for (const seed of [1, 2, 3]) {
      const all = readInChunks(enc.stdout, seed);
      expect(all[0].bos).toBe(true);
      expect(all[all.length - 1].eos).toBe(true);
      head = all.find((p) => p.data.toString("latin1", 0, 8) === "OpusHead")?.data;
      audio = all.filter((p) => !isOpusHeaderPacket(p.data));
      expect(all.length - audio.length).toBe(2);
      expect(audio.length).toBeGreaterThanOrEqual(49);
      expect(audio.length).toBeLessThanOrEqual(52);
      for (const p of audio) expect(opusPacketSamples(p.data)).toBe(960);
    }

    const w = new OggOpusWriter({ channels: 1, preSkip: head!.readUInt16LE(10) });
    const stream = Buffer.concat([
      w.headers(),
      ...audio.map((p, i) => w.packet(p.data, opusPacketSamples(p.data), i === audio.length - 1)),
    ]);
    const dec = await runFfmpeg(
      ["-v", "error", "-f", "ogg", "-i", "pipe:0", "-f", "s16le", "-ac", "1", "-ar", "48000", "pipe:1"],
      stream,
    );
    expect(dec.code, dec.stderr).toBe(0);
    expect(dec.stderr).toBe("");
    const pcm = Int16Array.from({ length: dec.stdout.length >> 1 }, (_, i) => dec.stdout.readInt16LE(2 * i));
    expect(Math.abs(pcm.length - 48000)).toBeLessThanOrEqual(48000 * 0.05);

    const mid = pcm.subarray(4800, pcm.length - 4800); // skip codec start-up / tail
    const tone = goertzel(mid, 440, 48000);
    const other = goertzel(mid, 1000, 48000);
    expect(10 * Math.log10(tone / other)).toBeGreaterThanOrEqual(30);
  });
});
