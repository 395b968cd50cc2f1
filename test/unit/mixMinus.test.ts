import { describe, expect, it } from "vitest";
import { blockLevelDb, clip16, fullMix, mixMinus, sumInputs } from "../../mixer/mixMinus.ts";

const i16 = (...v: number[]) => Int16Array.from(v);

/** Runs one tick: sum every input, then compute what each listener hears. */
function mixAll(inputs: (Int16Array | undefined)[], n: number): { sum: Int32Array; outs: Int16Array[] } {
  const sum = new Int32Array(n);
  sumInputs(inputs, sum);
  const outs = inputs.map((own) => {
    const out = new Int16Array(n);
    mixMinus(sum, own, out);
    return out;
  });
  return { sum, outs };
}

describe("clip16", () => {
  it("passes int16 values through and clips the rest", () => {
    expect(clip16(0)).toBe(0);
    expect(clip16(32767)).toBe(32767);
    expect(clip16(-32768)).toBe(-32768);
    expect(clip16(32768)).toBe(32767);
    expect(clip16(-32769)).toBe(-32768);
    expect(clip16(1_000_000)).toBe(32767);
    expect(clip16(-1_000_000)).toBe(-32768);
  });
});

describe("sumInputs", () => {
  it("adds every input sample by sample", () => {
    const sum = new Int32Array(3);
    sumInputs([i16(1, 2, 3), i16(10, 20, 30), i16(-100, 0, 100)], sum);
    expect([...sum]).toEqual([-89, 22, 133]);
  });

  it("clears the previous sum first", () => {
    const sum = Int32Array.from([5, 5, 5]);
    sumInputs([i16(1, 1, 1)], sum);
    expect([...sum]).toEqual([1, 1, 1]);
    sumInputs([], sum);
    expect([...sum]).toEqual([0, 0, 0]);
  });

  it("treats missing inputs as silence", () => {
    const sum = new Int32Array(2);
    sumInputs([undefined, i16(7, -7), undefined], sum);
    expect([...sum]).toEqual([7, -7]);
  });

  it("treats a short input as silence past its end and ignores samples past the sum", () => {
    const sum = new Int32Array(3);
    sumInputs([i16(1), i16(1, 1, 1, 1, 1)], sum);
    expect([...sum]).toEqual([2, 1, 1]);
  });

  it("accumulates in int32: no wrap-around beyond int16", () => {
    const sum = new Int32Array(2);
    sumInputs([i16(32767, -32768), i16(32767, -32768), i16(32767, -32768)], sum);
    expect([...sum]).toEqual([98301, -98304]);
  });
});

describe("mixMinus", () => {
  it("each listener hears everyone but themselves", () => {
    const a = i16(100, 1, 0);
    const b = i16(20, 2, -5);
    const c = i16(3, 4, 5);
    const { outs } = mixAll([a, b, c], 3);
    expect([...outs[0]]).toEqual([23, 6, 0]); // b + c
    expect([...outs[1]]).toEqual([103, 5, 5]); // a + c
    expect([...outs[2]]).toEqual([120, 3, -5]); // a + b
  });

  it("a lone participant hears silence", () => {
    const { outs } = mixAll([i16(1000, -1000, 32767)], 3);
    expect([...outs[0]]).toEqual([0, 0, 0]);
  });

  it("a listener who sent nothing hears the full mix", () => {
    const sum = Int32Array.from([5, -6, 40000]);
    const out = new Int16Array(3);
    mixMinus(sum, undefined, out);
    expect([...out]).toEqual([5, -6, 32767]);
  });

  it("clips at +32767 and -32768", () => {
    const loud = i16(30000, -30000);
    const { outs } = mixAll([loud, loud, loud], 2);
    for (const out of outs) expect([...out]).toEqual([32767, -32768]);
  });

  it("an intermediate sum beyond int16 is exact when the result fits", () => {
    // a + b = 60000 overflows int16, but c brings the total back into range.
    const a = i16(30000, -30000);
    const b = i16(30000, -30000);
    const c = i16(-30000, 30000);
    const { sum, outs } = mixAll([a, b, c], 2);
    expect([...sum]).toEqual([30000, -30000]);
    expect([...outs[0]]).toEqual([0, 0]); // b + c
    expect([...outs[1]]).toEqual([0, 0]); // a + c
    expect([...outs[2]]).toEqual([32767, -32768]); // a + b = +-60000, clipped
  });

  it("subtracts the listener's own input before clipping, not after", () => {
    // Full mix clips (40000), but minus own (20000) the result is exact.
    const a = i16(20000);
    const b = i16(20000);
    const { outs } = mixAll([a, b], 1);
    expect([...outs[0]]).toEqual([20000]);
    expect([...outs[1]]).toEqual([20000]);
  });

  it("treats a short own input as silence past its end", () => {
    const sum = Int32Array.from([10, 20, 30]);
    const out = new Int16Array(3);
    mixMinus(sum, i16(1), out);
    expect([...out]).toEqual([9, 20, 30]);
  });
});

describe("fullMix", () => {
  it("writes the clipped sum", () => {
    const out = new Int16Array(5);
    fullMix(Int32Array.from([0, 123, -456, 70000, -70000]), out);
    expect([...out]).toEqual([0, 123, -456, 32767, -32768]);
  });

  it("is what every participant contributes together", () => {
    const { sum } = mixAll([i16(1, 2), undefined, i16(3, 4)], 2);
    const out = new Int16Array(2);
    fullMix(sum, out);
    expect([...out]).toEqual([4, 6]);
  });
});

describe("blockLevelDb", () => {
  it("reads a full-scale square as 0 dBFS, a -12 dBFS sine near -15 dB RMS, and silence as -Infinity", () => {
    expect(blockLevelDb(new Int16Array(960).fill(32767))).toBeCloseTo(0, 1);
    const sine = Int16Array.from({ length: 960 }, (_, i) => Math.round(8231 * Math.sin((2 * Math.PI * 400 * i) / 48000)));
    expect(blockLevelDb(sine)).toBeCloseTo(-12 - 3.01, 0);
    expect(blockLevelDb(new Int16Array(960))).toBe(-Infinity);
  });
});
