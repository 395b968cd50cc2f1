// The overload policy on fake time: it climbs one level at a time (busy, then 20 fps, then 15) only
// after sustained overload (5 s), at most once every 3 s, and comes back down by itself, a level per 10 s
// of calm; a sample between "over" and "calm" holds the level where it is.
import { describe, expect, it } from "vitest";
import { DOWN_AFTER_MS, LEVEL_FPS, LOAD_SAMPLE_MS, OverloadPolicy, type LoadSample } from "../../server/overload.ts";

const quiet: LoadSample = { cpuCores: 0.3, loopLagMs: 2, tickLateMs: 1 };
const hot: LoadSample = { cpuCores: 1.9, loopLagMs: 2, tickLateMs: 1 };

/** Feeds `s` for `ms`, one sample every LOAD_SAMPLE_MS from `t`; returns the levels reached, and the new time. */
function run(p: OverloadPolicy, s: LoadSample, t: number, ms: number): { levels: number[]; t: number } {
  const levels: number[] = [];
  for (const end = t + ms; t < end; ) {
    t += LOAD_SAMPLE_MS;
    const l = p.sample(s, t);
    if (l !== undefined) levels.push(l);
  }
  return { levels, t };
}

describe("the overload policy", () => {
  it("does not move on one hot sample, nor on a short spike", () => {
    const p = new OverloadPolicy(1.7, 0);
    expect(p.sample(hot, 500)).toBeUndefined();
    expect(p.sample(hot, 1000)).toBeUndefined();
    expect(p.sample(quiet, 1500)).toBeUndefined();
    expect(run(p, hot, 2000, 4000).levels).toEqual([]); // 4 s hot: a burst of joins, browsers starting
    expect(p.level).toBe(0);
  });

  it("climbs busy → 20 fps → 15 fps under sustained overload, a step at most every 3 s, and stops there", () => {
    const p = new OverloadPolicy(1.7, 0);
    const { levels } = run(p, hot, 0, 12_000);
    expect(levels).toEqual([1, 2, 3]);
    expect(LEVEL_FPS[1]).toBeUndefined();
    expect(LEVEL_FPS[2]).toBe(20);
    expect(LEVEL_FPS[3]).toBe(15);
    expect(p.lastCause).toBe("cpu");
  });

  it("counts a lagging event loop and late media ticks as overload too, while the server is busy itself", () => {
    const working = { ...quiet, cpuCores: 1.0 };
    const lag = new OverloadPolicy(1.7, 0);
    expect(run(lag, { ...working, loopLagMs: 60 }, 0, 5000).levels).toEqual([1]);
    expect(lag.lastCause).toBe("loop_lag");
    const late = new OverloadPolicy(1.7, 0);
    expect(run(late, { ...working, tickLateMs: 60 }, 0, 5000).levels).toEqual([1]);
    expect(late.lastCause).toBe("tick_late");
    // Stalled while using little CPU (a blocking call beside it, other programs on the cores): not its overload.
    const stalled = new OverloadPolicy(1.7, 0);
    expect(run(stalled, { cpuCores: 0.15, loopLagMs: 270, tickLateMs: 430 }, 0, 20_000).levels).toEqual([]);
  });

  it("a media worker: the server's CPU against the server's budget; its own lateness counts once it uses its share", () => {
    // Two workers on 2 cores (budget 1.7): one uses 0.95 of a core, beyond "its half", while the
    // server is at 1.4: not over budget (in one process the same load would not be either).
    const uneven = new OverloadPolicy(1.7, 0, 1 / 2);
    expect(run(uneven, { cpuCores: 0.95, serverCpuCores: 1.4, loopLagMs: 5, tickLateMs: 3 }, 0, 20_000).levels).toEqual([]);
    // The server over budget: every worker steps up, whatever its own share.
    const server = new OverloadPolicy(1.7, 0, 1 / 2);
    expect(run(server, { cpuCores: 0.3, serverCpuCores: 1.9, loopLagMs: 5, tickLateMs: 3 }, 0, 5000).levels).toEqual([1]);
    expect(server.lastCause).toBe("cpu");
    // Its own loop late while it works (over half of its share): its overload, though the server has room.
    const saturated = new OverloadPolicy(1.7, 0, 1 / 2);
    expect(run(saturated, { cpuCores: 0.6, serverCpuCores: 0.9, loopLagMs: 80, tickLateMs: 90 }, 0, 5000).levels).toEqual([1]);
    // Late while it does little itself: a stall beside it, not its work.
    const idle = new OverloadPolicy(1.7, 0, 1 / 2);
    expect(run(idle, { cpuCores: 0.2, serverCpuCores: 1.2, loopLagMs: 80, tickLateMs: 90 }, 0, 20_000).levels).toEqual([]);
  });

  it("comes back down by itself, one level per 10 s of calm", () => {
    const p = new OverloadPolicy(1.7, 0);
    let { t } = run(p, hot, 0, 12_000);
    expect(p.level).toBe(3);
    const down = run(p, quiet, t, 3 * DOWN_AFTER_MS + 1000);
    expect(down.levels).toEqual([2, 1, 0]);
    t = down.t;
    expect(p.level).toBe(0);
  });

  it("holds its level while the load is neither over budget nor calm", () => {
    const p = new OverloadPolicy(1.7, 0);
    const { t } = run(p, hot, 0, 5000);
    expect(p.level).toBe(1);
    // 1.5 cores: under the 1.7 budget, over 80 % of it: not calm.
    expect(run(p, { ...quiet, cpuCores: 1.5 }, t, 30_000).levels).toEqual([]);
    expect(p.level).toBe(1);
  });
});
