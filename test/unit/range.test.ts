import { describe, expect, it } from "vitest";
import { parseRange } from "../../server/recordings/range.ts";

describe("parseRange", () => {
  it("serves the whole file without a Range header", () => {
    expect(parseRange(undefined, 100)).toEqual({ kind: "all" });
    expect(parseRange("", 100)).toEqual({ kind: "all" });
  });

  it("reads closed, open-ended and suffix ranges, clamped to the file", () => {
    expect(parseRange("bytes=0-9", 100)).toEqual({ kind: "range", start: 0, end: 9 });
    expect(parseRange("bytes=90-", 100)).toEqual({ kind: "range", start: 90, end: 99 });
    expect(parseRange("bytes=90-500", 100)).toEqual({ kind: "range", start: 90, end: 99 });
    expect(parseRange("bytes=-10", 100)).toEqual({ kind: "range", start: 90, end: 99 });
    expect(parseRange("bytes=-500", 100)).toEqual({ kind: "range", start: 0, end: 99 });
    expect(parseRange(" bytes=5-5 ", 100)).toEqual({ kind: "range", start: 5, end: 5 });
  });

  it("refuses malformed, reversed, unsatisfiable and multiple ranges with a reason", () => {
    for (const [h, why] of [
      ["bytes=abc", /malformed/],
      ["bytes=-", /malformed/],
      ["items=0-1", /must look like/],
      ["bytes=10-5", /before its start/],
      ["bytes=100-", /past the end/],
      ["bytes=-0", /empty suffix/],
      ["bytes=0-1,5-6", /one byte range/],
    ] as const) {
      const r = parseRange(h, 100);
      expect(r.kind, h).toBe("bad");
      expect(r.kind === "bad" && r.message, h).toMatch(why);
    }
  });
});
