import { describe, expect, it } from "vitest";
import { MediaClock, type Tick } from "../../mixer/clock.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Blocks the event loop (a stand-in for a slow synchronous tick). */
function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

interface Seen extends Tick {
  at: number;
}

/** Runs a clock for `runMs` and records every tick with the time it fired. */
async function run(periodMs: number, runMs: number, onTick?: (t: Tick) => void): Promise<{ ticks: Seen[]; started: number }> {
  const ticks: Seen[] = [];
  const clock = new MediaClock(periodMs, (t) => {
    ticks.push({ ...t, at: performance.now() });
    onTick?.(t);
  });
  const started = performance.now();
  clock.begin();
  await sleep(runMs);
  clock.stop();
  return { ticks, started };
}

describe("MediaClock", () => {
  it("ticks every period with consecutive indices on a fixed grid", async () => {
    const period = 10;
    const { ticks, started } = await run(period, 200);
    expect(ticks.length).toBeGreaterThanOrEqual(15);
    expect(ticks.length).toBeLessThanOrEqual(22);
    expect(ticks[0].index).toBe(0);
    expect(Math.abs(ticks[0].due - started)).toBeLessThan(5);
    for (let i = 1; i < ticks.length; i++) {
      // Index advances by one, or by one plus what was skipped if the machine hiccupped.
      expect(ticks[i].index).toBe(ticks[i - 1].index + 1 + ticks[i].skipped);
      // Deadlines are exact multiples of the period from the start: no accumulated drift.
      expect(ticks[i].due - ticks[0].due).toBeCloseTo(ticks[i].index * period, 6);
    }
    const skipped = ticks.reduce((s, t) => s + t.skipped, 0);
    expect(skipped).toBeLessThanOrEqual(2);
    // Each tick fires close to its deadline; lateness does not build up over the run.
    for (const t of ticks) {
      expect(t.at - t.due).toBeGreaterThan(-2);
      expect(t.at - t.due).toBeLessThan(period + 5);
    }
    const last = ticks[ticks.length - 1];
    expect(last.at - last.due).toBeLessThan(8);
  });

  it("the total tick count tracks elapsed time rather than timer lateness", async () => {
    const period = 10;
    const { ticks } = await run(period, 200);
    const last = ticks[ticks.length - 1];
    const expected = Math.floor((last.at - ticks[0].due) / period);
    expect(Math.abs(last.index - expected)).toBeLessThanOrEqual(1);
  });

  it("reports skipped ticks after the event loop was blocked", async () => {
    const period = 10;
    const { ticks } = await run(period, 150, (t) => {
      if (t.index === 3) busyWait(50);
    });
    const i = ticks.findIndex((t) => t.index === 3);
    expect(i).toBeGreaterThanOrEqual(0);
    const after = ticks[i + 1];
    expect(after.skipped).toBeGreaterThan(0);
    expect(after.skipped).toBeGreaterThanOrEqual(3); // ~5 periods were missed
    expect(after.index).toBe(3 + 1 + after.skipped);
    // It fires once for the stall (not once per missed period) and stays on the grid.
    expect(after.due - ticks[0].due).toBeCloseTo(after.index * period, 6);
    expect(after.at - after.due).toBeLessThan(period);
    // Then it goes back to regular ticks.
    expect(ticks[i + 2].index).toBe(after.index + 1 + ticks[i + 2].skipped);
  });

  it("stop() stops the ticks", async () => {
    let n = 0;
    const clock = new MediaClock(5, () => n++);
    clock.begin();
    await sleep(40);
    clock.stop();
    const atStop = n;
    expect(atStop).toBeGreaterThan(0);
    await sleep(40);
    expect(n).toBe(atStop);
  });

  it("stop() from inside a tick prevents further ticks", async () => {
    const seen: number[] = [];
    const clock = new MediaClock(5, (t) => {
      seen.push(t.index);
      if (t.index === 2) clock.stop();
    });
    clock.begin();
    await sleep(60);
    expect(seen).toEqual([0, 1, 2]);
  });

  it("begin() twice does not start a second timer, and it can restart after stop()", async () => {
    let n = 0;
    const clock = new MediaClock(10, () => n++);
    clock.begin();
    clock.begin();
    await sleep(55);
    clock.stop();
    expect(n).toBeGreaterThanOrEqual(4);
    expect(n).toBeLessThanOrEqual(7);
    const seen: Tick[] = [];
    const again = new MediaClock(10, (t) => seen.push(t));
    again.begin();
    again.stop();
    again.begin();
    await sleep(25);
    again.stop();
    expect(seen[0].index).toBe(0);
  });
});
