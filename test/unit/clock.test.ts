// The media clock on fake time: every tick's deadline, firing time and skip count is exact, so the
// checks are equalities, not ranges that a loaded machine might break.
import { beforeEach, describe, expect, it } from "vitest";
import { CATCH_UP_SLICE_MS, MediaClock, type Tick, type TimeSource } from "../../mixer/clock.ts";
import { metrics } from "../../telemetry/metrics.ts";

/**
 * Fake time: timers fire in order as time is advanced, each at its own time; a callback that
 * "stalls" moves time on, and timers due meanwhile fire late, as after a blocked event loop.
 */
class FakeTime implements TimeSource {
  private t = 1_000_000;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private ids = 0;
  now = () => this.t;
  setTimeout = (fn: () => void, ms: number) => {
    this.timers.push({ at: this.t + ms, fn, id: ++this.ids });
    return this.ids;
  };
  clearTimeout = (id: unknown) => {
    this.timers = this.timers.filter((x) => x.id !== id);
  };
  get pending(): number {
    return this.timers.length;
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = Math.max(this.t, end);
  }
  /** Blocks "the event loop" for `ms` (call it from a tick). */
  stall(ms: number): void {
    this.t += ms;
  }
}

interface Seen extends Tick {
  at: number;
}

let time: FakeTime;
beforeEach(() => {
  time = new FakeTime();
});

/** A clock recording every tick with the (fake) time it fired; `onTick` may stall it. */
function clockOf(periodMs: number, onTick?: (t: Tick) => void, maxCatchUp = 0): { clock: MediaClock; ticks: Seen[] } {
  const ticks: Seen[] = [];
  const clock = new MediaClock(periodMs, (t) => {
    ticks.push({ ...t, at: time.now() });
    onTick?.(t);
  }, time, maxCatchUp);
  return { clock, ticks };
}

const stall = (ms: number) => time.stall(ms);

describe("MediaClock", () => {
  it("ticks every period, on time, with consecutive indices on a fixed grid", () => {
    const { clock, ticks } = clockOf(10);
    const started = time.now();
    clock.begin();
    time.advance(200);
    clock.stop();
    expect(ticks.map((t) => t.index)).toEqual(Array.from({ length: 21 }, (_, i) => i));
    for (const t of ticks) {
      expect(t.due).toBe(started + t.index * 10);
      expect(t.at).toBe(t.due);
      expect(t.skipped).toBe(0);
    }
  });

  it("a late tick does not move the next deadline: lateness never accumulates", () => {
    // Every tick takes 7 ms of a 10 ms period: the next still fires at its own deadline.
    const { clock, ticks } = clockOf(10, () => stall(7));
    const started = time.now();
    clock.begin();
    time.advance(100);
    clock.stop();
    expect(ticks.length).toBe(11); // 0, 10, …, 100 ms
    for (const t of ticks) {
      expect(t.at).toBe(started + t.index * 10);
      expect(t.skipped).toBe(0);
    }
  });

  it("after a stall it fires once, reports the ticks it skipped, and stays on the grid", () => {
    const { clock, ticks } = clockOf(10, (t) => t.index === 3 && stall(55));
    const started = time.now();
    clock.begin();
    time.advance(150);
    clock.stop();
    const i = ticks.findIndex((t) => t.index === 3);
    const after = ticks[i + 1]!;
    // Stalled from 30 to 85 ms: ticks 4..7 were due meanwhile and are skipped; tick 8 fires at 85.
    expect(after).toEqual({ index: 8, due: started + 80, skipped: 4, at: started + 85 });
    expect(ticks[i + 2]).toEqual({ index: 9, due: started + 90, skipped: 0, at: started + 90 });
    // The count of ticks tracks elapsed time, not timer callbacks.
    expect(ticks.at(-1)!.index).toBe(15);
  });

  it("with catch-up, after a stall it fires every missed tick at once, in order, and none is skipped", () => {
    const { clock, ticks } = clockOf(20, (t) => t.index === 3 && stall(75), 50);
    const started = time.now();
    clock.begin();
    time.advance(300);
    clock.stop();
    // Stalled from 60 to 135 ms: ticks 4..6 were due meanwhile; they fire at 135, then tick 7 is on time.
    const i = ticks.findIndex((t) => t.index === 3);
    expect(ticks.slice(i + 1, i + 5)).toEqual([
      { index: 4, due: started + 80, skipped: 0, catchingUp: true, at: started + 135 },
      { index: 5, due: started + 100, skipped: 0, catchingUp: true, at: started + 135 },
      { index: 6, due: started + 120, skipped: 0, at: started + 135 },
      { index: 7, due: started + 140, skipped: 0, at: started + 140 },
    ]);
    expect(ticks.map((t) => t.index)).toEqual(Array.from({ length: 16 }, (_, k) => k));
  });

  it("a long catch-up runs in slices of CATCH_UP_SLICE_MS with the event loop turning between them", () => {
    // Each replayed tick takes 3 ms; tick 1 stalls 500 ms, so 25 ticks are due at once.
    let other: number | undefined;
    const { clock, ticks } = clockOf(20, (t) => {
      if (t.index === 1) stall(500);
      else if (t.catchingUp) stall(3);
      // Something else that became ready meanwhile (a packet, another room's clock) waits for the loop.
      if (t.index === 2) time.setTimeout(() => (other = ticks.length), 0);
    }, 50);
    clock.begin();
    time.advance(1000);
    clock.stop();
    // The other callback ran after one slice (4 ticks of 3 ms reach 10 ms), not after all 25.
    const sliceTicks = Math.ceil(CATCH_UP_SLICE_MS / 3);
    expect(other).toBe(2 + sliceTicks);
    // Nothing is skipped and every tick comes once, in order.
    expect(ticks.map((t) => t.index)).toEqual(Array.from({ length: ticks.length }, (_, k) => k));
    expect(ticks.every((t) => t.skipped === 0)).toBe(true);
  });

  it("with catch-up, a stall longer than the catch-up skips (and reports) only what is beyond it", () => {
    const { clock, ticks } = clockOf(20, (t) => t.index === 1 && stall(1000), 10);
    clock.begin();
    time.advance(1200);
    clock.stop();
    // Stalled from 20 to 1020 ms: ticks 2..51 were due; 51 and the 10 before it fire, 2..40 are skipped.
    const after = ticks.filter((t) => t.index > 1);
    expect(after[0]).toMatchObject({ index: 41, skipped: 39 });
    expect(after.slice(0, 11).map((t) => t.index)).toEqual(Array.from({ length: 11 }, (_, k) => 41 + k));
    expect(after.slice(1).every((t) => t.skipped === 0)).toBe(true);
  });

  it("stop() stops the ticks, also from inside a tick", () => {
    const a = clockOf(5);
    a.clock.begin();
    time.advance(40);
    a.clock.stop();
    const atStop = a.ticks.length;
    expect(atStop).toBe(9);
    time.advance(40);
    expect(a.ticks.length).toBe(atStop);

    const b = clockOf(5, (t) => t.index === 2 && b.clock.stop());
    b.clock.begin();
    time.advance(60);
    expect(b.ticks.map((t) => t.index)).toEqual([0, 1, 2]);
    expect(time.pending).toBe(0);
  });

  it("begin() twice does not start a second timer; after stop() it starts again from tick 0", () => {
    const { clock, ticks } = clockOf(10);
    clock.begin();
    clock.begin();
    expect(time.pending).toBe(1);
    time.advance(55);
    clock.stop();
    expect(ticks.map((t) => t.index)).toEqual([0, 1, 2, 3, 4, 5]);
    const restartedAt = time.now();
    clock.begin();
    time.advance(25);
    clock.stop();
    expect(ticks.slice(6).map((t) => [t.index, t.due])).toEqual([[0, restartedAt], [1, restartedAt + 10], [2, restartedAt + 20]]);
  });

  it("dueTime() names any tick's deadline from the start", () => {
    const { clock } = clockOf(20);
    const started = time.now();
    clock.begin();
    expect(clock.dueTime(0)).toBe(started);
    expect(clock.dueTime(150)).toBe(started + 3000);
    clock.stop();
  });

  it("a tick that throws ends there, is counted, and the clock goes on (also while catching up)", () => {
    const before = metrics.tickErrors.get({ clock: "test" });
    const seen: number[] = [];
    const clock = new MediaClock(10, (t) => {
      seen.push(t.index);
      if (t.index === 2) stall(35); // ticks 3-5 are then due at once, caught up
      if (t.index === 2 || t.index === 4) throw new Error(`tick ${t.index} broke`);
    }, time, 5, "test");
    clock.begin();
    expect(() => time.advance(100)).not.toThrow();
    clock.stop();
    expect(seen).toEqual(Array.from({ length: 11 }, (_, i) => i));
    expect(clock.errors).toBe(2);
    expect(metrics.tickErrors.get({ clock: "test" }) - before).toBe(2);
  });
});
