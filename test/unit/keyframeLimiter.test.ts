import { describe, expect, it } from "vitest";
import { KeyframeLimiter } from "../../mixer/keyframeLimiter.ts";

function setup(minIntervalMs = 500, start = 1000) {
  const clock = { t: start };
  const limiter = new KeyframeLimiter(minIntervalMs, () => clock.t);
  return { clock, limiter };
}

describe("KeyframeLimiter", () => {
  it("forces the first request immediately", () => {
    const { limiter } = setup();
    expect(limiter.request()).toEqual({ forceNow: true });
    expect(limiter.hasPending).toBe(false);
  });

  it("forces the first request even at time 0", () => {
    const { limiter } = setup(500, 0);
    expect(limiter.request()).toEqual({ forceNow: true });
  });

  it("defers requests inside the window with the remaining delay", () => {
    const { clock, limiter } = setup(500, 1000);
    limiter.request();
    clock.t = 1100;
    expect(limiter.request()).toEqual({ forceNow: false, retryInMs: 400, alreadyPending: false });
    expect(limiter.hasPending).toBe(true);
    clock.t = 1450;
    expect(limiter.request()).toEqual({ forceNow: false, retryInMs: 50, alreadyPending: true });
    expect(limiter.hasPending).toBe(true);
  });

  it("a request at the same instant is deferred by the whole window", () => {
    const { limiter } = setup(500);
    limiter.request();
    expect(limiter.request()).toEqual({ forceNow: false, retryInMs: 500, alreadyPending: false });
  });

  it("forces again once the window has passed and clears the pending flag", () => {
    const { clock, limiter } = setup(500, 1000);
    limiter.request();
    clock.t = 1200;
    limiter.request();
    expect(limiter.hasPending).toBe(true);
    clock.t = 1500; // exactly at the window's end
    expect(limiter.request()).toEqual({ forceNow: true });
    expect(limiter.hasPending).toBe(false);
    // The window restarts from the new forced keyframe.
    clock.t = 1600;
    expect(limiter.request()).toEqual({ forceNow: false, retryInMs: 400, alreadyPending: false });
    clock.t = 5000;
    expect(limiter.request()).toEqual({ forceNow: true });
  });

  it("noteKeyframe satisfies pending requests", () => {
    const { clock, limiter } = setup(500, 1000);
    limiter.request();
    clock.t = 1100;
    limiter.request();
    expect(limiter.hasPending).toBe(true);
    limiter.noteKeyframe();
    expect(limiter.hasPending).toBe(false);
    // It does not reset the window: the next request is still deferred, and is a fresh one.
    clock.t = 1200;
    expect(limiter.request()).toEqual({ forceNow: false, retryInMs: 300, alreadyPending: false });
  });

  it("with a zero interval every request forces", () => {
    const { limiter } = setup(0);
    expect(limiter.request()).toEqual({ forceNow: true });
    expect(limiter.request()).toEqual({ forceNow: true });
    expect(limiter.hasPending).toBe(false);
  });

  it("uses performance.now() by default", () => {
    const limiter = new KeyframeLimiter(60_000);
    expect(limiter.request()).toEqual({ forceNow: true });
    const r = limiter.request();
    expect(r.forceNow).toBe(false);
    if (!r.forceNow) {
      expect(r.retryInMs).toBeGreaterThan(59_000);
      expect(r.retryInMs).toBeLessThanOrEqual(60_000);
    }
  });
});
