// The media plane's one restart policy: at once the first time in a while, then a jittered backoff
// that doubles to a ceiling, none after too many failures in the window, and a clean slate once
// the window has passed.
import { describe, expect, it } from "vitest";
import { Restarts } from "../../mixer/restarts.ts";

function policy(random = 0.5) {
  let now = 0;
  const r = new Restarts({ windowMs: 10_000, limit: 5, baseMs: 250, maxMs: 1000 }, () => now, () => random);
  return { r, at: (t: number) => (now = t) };
}

describe("Restarts", () => {
  it("restarts at once the first time, then backs off doubling to the ceiling, then gives up", () => {
    const { r, at } = policy();
    const delays = [0, 100, 200, 300, 400, 500].map((t) => (at(t), r.failed()));
    expect(delays).toEqual([0, 250, 500, 1000, 1000, undefined]);
    expect(r.recent).toBe(6);
  });

  it("jitters each delay by up to ±25 %", () => {
    const low = policy(0);
    const high = policy(0.999999);
    low.r.failed();
    high.r.failed();
    expect(low.r.failed()).toBe(188); // 250 × 0.75
    expect(high.r.failed()).toBe(312); // 250 × 1.25
  });

  it("forgets failures older than the window", () => {
    const { r, at } = policy();
    for (let t = 0; t < 5; t++) (at(t * 100), r.failed());
    at(20_000);
    expect(r.failed()).toBe(0);
    expect(r.recent).toBe(1);
  });
});
