// The nesting scan that runs before a long-poll body is parsed.
import { describe, expect, it } from "vitest";
import { jsonDepthExceeds } from "../../server/signaling/longpoll.ts";

const nested = (n: number) => "[".repeat(n) + "]".repeat(n);

describe("jsonDepthExceeds", () => {
  it("counts arrays and objects alike, up to and past the limit", () => {
    expect(jsonDepthExceeds(nested(32), 32)).toBe(false);
    expect(jsonDepthExceeds(nested(33), 32)).toBe(true);
    expect(jsonDepthExceeds('{"a":{"b":[{"c":1}]}}', 4)).toBe(false);
    expect(jsonDepthExceeds('{"a":{"b":[{"c":1}]}}', 3)).toBe(true);
  });

  it("measures depth, not the number of brackets", () => {
    expect(jsonDepthExceeds("[" + "[],".repeat(10_000) + "[]]", 2)).toBe(false);
    expect(jsonDepthExceeds('{"seq":1,"message":{"type":"candidate","candidate":{"candidate":"x"}}}', 3)).toBe(false);
  });

  it("ignores brackets inside strings", () => {
    expect(jsonDepthExceeds(JSON.stringify({ s: "[[[[[[{{{{{{" }), 1)).toBe(false);
    expect(jsonDepthExceeds(JSON.stringify(["]]]]]]", [[[1]]]]), 3)).toBe(true); // closers in a string do not unwind
  });

  it("honours backslash escapes in strings", () => {
    // "\"[[[" is one string: the escaped quote does not end it.
    expect(jsonDepthExceeds(JSON.stringify({ s: '"[[[[' }), 1)).toBe(false);
    // A string ending in an escaped backslash ends at the next quote; the brackets after it count.
    expect(jsonDepthExceeds(JSON.stringify(["a\\", [[[]]]]), 3)).toBe(true);
    expect(jsonDepthExceeds(JSON.stringify(["a\\", "[[[["]), 1)).toBe(false);
  });

  it("handles non-JSON and empty input without throwing", () => {
    expect(jsonDepthExceeds("", 1)).toBe(false);
    expect(jsonDepthExceeds("]]]]", 1)).toBe(false);
    expect(jsonDepthExceeds('"unterminated [[[[', 1)).toBe(false);
  });
});
