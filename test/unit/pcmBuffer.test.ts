import { describe, expect, it } from "vitest";
import { PcmBuffer } from "../../mixer/pcmBuffer.ts";

/** Samples start, start+1, ... so order and continuity are easy to check. */
const ramp = (start: number, n: number) => Int16Array.from({ length: n }, (_, i) => start + i);

function s16le(samples: number[]): Buffer {
  const b = Buffer.alloc(samples.length * 2);
  samples.forEach((s, i) => b.writeInt16LE(s, i * 2));
  return b;
}

describe("PcmBuffer", () => {
  it("does not play until the prefill is reached", () => {
    const buf = new PcmBuffer(8, 100);
    const out = new Int16Array(4).fill(-1);
    expect(buf.take(out)).toBe(false);
    buf.push(ramp(0, 7));
    expect(buf.length).toBe(7);
    expect(buf.take(out)).toBe(false);
    expect([...out]).toEqual([-1, -1, -1, -1]); // untouched
    expect(buf.underruns).toBe(0); // prefilling is not an underrun
    buf.push(ramp(7, 1));
    expect(buf.take(out)).toBe(true);
    expect([...out]).toEqual([0, 1, 2, 3]);
    expect(buf.length).toBe(4);
  });

  it("once playing, keeps playing below the prefill level", () => {
    const buf = new PcmBuffer(8, 100);
    buf.push(ramp(0, 8));
    const out = new Int16Array(4);
    expect(buf.take(out)).toBe(true);
    expect(buf.take(out)).toBe(true); // 4 left < prefill, still playing
    expect([...out]).toEqual([4, 5, 6, 7]);
    expect(buf.length).toBe(0);
  });

  it("returns exact samples in order across chunk boundaries", () => {
    const buf = new PcmBuffer(0, 1000);
    // Uneven chunks: 3, 1, 7, 2, 5, 10 samples = 28 in all.
    let next = 0;
    for (const n of [3, 1, 7, 2, 5, 10]) {
      buf.push(ramp(next, n));
      next += n;
    }
    const got: number[] = [];
    const out = new Int16Array(4);
    while (buf.take(out)) got.push(...out);
    expect(got).toEqual([...ramp(0, 28)]);
    expect(buf.length).toBe(0);
  });

  it("interleaves pushes and takes without losing or repeating samples", () => {
    const buf = new PcmBuffer(6, 1000);
    const out = new Int16Array(5);
    const got: number[] = [];
    let next = 0;
    for (let i = 0; i < 50; i++) {
      const n = 1 + ((i * 7) % 9); // 1..9 samples, 5 on average
      buf.push(ramp(next, n));
      next += n;
      if (buf.take(out)) got.push(...out);
    }
    expect(got).toEqual([...ramp(0, got.length)]);
    expect(got.length + buf.length).toBe(next);
    expect(buf.dropped).toBe(0);
  });

  it("pushBytes decodes s16le, including negatives and extremes", () => {
    const buf = new PcmBuffer(0, 100);
    const samples = [0, 1, -1, 32767, -32768, 258, -258];
    buf.pushBytes(s16le(samples));
    const out = new Int16Array(samples.length);
    expect(buf.take(out)).toBe(true);
    expect([...out]).toEqual(samples);
  });

  it("pushBytes reassembles samples split across odd-length chunks", () => {
    const buf = new PcmBuffer(0, 1000);
    const samples = [...ramp(-20, 40)].map((v) => v * 811); // spread over the int16 range
    const bytes = s16le(samples);
    let off = 0;
    for (const n of [1, 1, 3, 2, 5, 1, 7, 4, 9, 1, 13, 33]) {
      buf.pushBytes(bytes.subarray(off, off + n));
      off += n;
    }
    buf.pushBytes(bytes.subarray(off));
    expect(buf.length).toBe(samples.length);
    const out = new Int16Array(samples.length);
    expect(buf.take(out)).toBe(true);
    expect([...out]).toEqual(samples);
  });

  it("a single byte waits for its partner", () => {
    const buf = new PcmBuffer(0, 100);
    const bytes = s16le([-12345]);
    buf.pushBytes(bytes.subarray(0, 1));
    expect(buf.length).toBe(0);
    buf.pushBytes(Buffer.alloc(0));
    expect(buf.length).toBe(0);
    buf.pushBytes(bytes.subarray(1));
    expect(buf.length).toBe(1);
    const out = new Int16Array(1);
    expect(buf.take(out)).toBe(true);
    expect(out[0]).toBe(-12345);
  });

  it("an underrun returns false, leaves out untouched and prefills again", () => {
    const buf = new PcmBuffer(8, 100);
    const out = new Int16Array(4);
    buf.push(ramp(0, 10));
    expect(buf.take(out)).toBe(true);
    expect(buf.take(out)).toBe(true);
    out.fill(-1);
    expect(buf.length).toBe(2);
    expect(buf.take(out)).toBe(false); // only 2 left
    expect([...out]).toEqual([-1, -1, -1, -1]);
    expect(buf.underruns).toBe(1);
    expect(buf.length).toBe(2); // the remainder is kept, not discarded
    // Back to prefilling: 6 samples (>= one take) are not enough, 8 are.
    buf.push(ramp(10, 4));
    expect(buf.take(out)).toBe(false);
    expect(buf.underruns).toBe(1);
    buf.push(ramp(14, 2));
    expect(buf.take(out)).toBe(true);
    expect([...out]).toEqual([8, 9, 10, 11]); // continuous across the underrun
  });

  it("caps its depth by dropping the oldest audio", () => {
    const buf = new PcmBuffer(4, 10);
    buf.push(ramp(0, 6));
    buf.push(ramp(6, 4)); // 10: at the cap, nothing dropped
    expect(buf.length).toBe(10);
    expect(buf.dropped).toBe(0);
    buf.push(ramp(10, 3)); // 13 > 10: keep only the newest `prefill` samples
    expect(buf.length).toBe(4);
    expect(buf.dropped).toBe(9);
    const out = new Int16Array(4);
    expect(buf.take(out)).toBe(true);
    expect([...out]).toEqual([9, 10, 11, 12]);
  });

  it("drops from the middle of a partly read chunk correctly", () => {
    const buf = new PcmBuffer(2, 8);
    buf.push(ramp(0, 8));
    const out = new Int16Array(3);
    expect(buf.take(out)).toBe(true); // reads 0..2, head is inside the first chunk
    buf.push(ramp(8, 5)); // 5 + 5 = 10 > 8: drop 8, keep 11, 12
    expect(buf.dropped).toBe(8);
    expect(buf.length).toBe(2);
    const two = new Int16Array(2);
    expect(buf.take(two)).toBe(true);
    expect([...two]).toEqual([11, 12]);
  });

  it("defaults to 40 ms prefill and 200 ms cap at 48 kHz", () => {
    const buf = new PcmBuffer();
    const frame = new Int16Array(960);
    buf.push(new Int16Array(1919));
    expect(buf.take(frame)).toBe(false);
    buf.push(new Int16Array(1));
    expect(buf.take(frame)).toBe(true);
    buf.push(new Int16Array(9600));
    expect(buf.length).toBe(1920);
  });
});

describe("PcmBuffer depth shedding", () => {
  it("drops depth that was never needed during a window, keeping the margin", () => {
    const b = new PcmBuffer(1920, 48000, 480, 50);
    b.push(new Int16Array(960 * 5).fill(1)); // a burst at start: 100 ms where 40 would do
    for (let i = 0; i < 50; i++) {
      b.push(new Int16Array(960).fill(1));
      expect(b.take(new Int16Array(960))).toBe(true);
    }
    // Over the window 5 blocks were always left: all but the 10 ms margin is shed.
    expect(b.length).toBe(480);
    expect(b.dropped).toBe(960 * 5 - 480);
  });

  it("drops ticks the mixer skipped", () => {
    const b = new PcmBuffer(960, 48000);
    b.push(new Int16Array(960 * 4));
    b.discard(960 * 2);
    expect(b.length).toBe(960 * 2);
    b.discard(960 * 10); // never more than is buffered
    expect(b.length).toBe(0);
  });
});
