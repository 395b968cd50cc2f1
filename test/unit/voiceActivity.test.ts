import { describe, expect, it } from "vitest";
import { Floor, VOICE_DEFAULTS, VoiceActivity } from "../../mixer/voiceActivity.ts";

/** Feeds `ms` of 20 ms blocks at `db` from time `t`; returns the time after and every speaking change. */
function feed(v: VoiceActivity, t: number, ms: number, db: number, changes: [number, boolean][] = []): number {
  for (let end = t + ms; t < end; t += 20) if (v.push(db, t)) changes.push([t, v.speaking]);
  return t;
}

describe("VoiceActivity", () => {
  it("starts after a sustained voice (the onset), holds through pauses inside a sentence, ends after the hold", () => {
    const v = new VoiceActivity();
    const changes: [number, boolean][] = [];
    let t = feed(v, 0, 1000, -80, changes);
    t = feed(v, t, 400, -20, changes);
    expect(changes).toEqual([[1000 + (Math.ceil(VOICE_DEFAULTS.onsetMs / 20) - 1) * 20, true]]);
    // A 600 ms pause (under the 1 s hold) keeps it speaking; then the voice again.
    t = feed(v, t, 600, -80, changes);
    t = feed(v, t, 300, -20, changes);
    expect(changes.length).toBe(1);
    // Silence: it ends once the hold has passed since the last voice.
    const quietFrom = t;
    feed(v, t, 2000, -80, changes);
    expect(changes.length).toBe(2);
    const [endAt, on] = changes[1]!;
    expect(on).toBe(false);
    expect(endAt - quietFrom).toBeGreaterThan(VOICE_DEFAULTS.holdMs - 40);
    expect(endAt - quietFrom).toBeLessThan(VOICE_DEFAULTS.holdMs + 40);
  });

  it("ignores a 100 ms blip, a cough-length burst, and key clicks", () => {
    const v = new VoiceActivity();
    const changes: [number, boolean][] = [];
    let t = feed(v, 0, 500, -80, changes);
    t = feed(v, t, 100, -10, changes); // blip
    t = feed(v, t, 500, -80, changes);
    t = feed(v, t, 200, -15, changes); // cough
    t = feed(v, t, 1000, -80, changes);
    for (let i = 0; i < 20; i++) {
      t = feed(v, t, 40, -20, changes); // typing: 40 ms clicks, 160 ms apart
      t = feed(v, t, 160, -80, changes);
    }
    expect(changes).toEqual([]);
  });

  it("has level hysteresis: a voice dropping between the thresholds keeps speaking", () => {
    const v = new VoiceActivity();
    let t = feed(v, 0, 400, -30);
    expect(v.speaking).toBe(true);
    t = feed(v, t, 3000, (VOICE_DEFAULTS.onDb + VOICE_DEFAULTS.offDb) / 2);
    expect(v.speaking).toBe(true);
    feed(v, t, 3000, VOICE_DEFAULTS.offDb - 5);
    expect(v.speaking).toBe(false);
  });
});

describe("Floor", () => {
  const s = { ...VOICE_DEFAULTS, floorHoldMs: 1500, floorMinIntervalMs: 3000 };
  /** Runs 20 ms steps with the given speakers for `ms`; returns the time after. */
  const run = (f: Floor, t: number, ms: number, speakers: Record<string, number>, moves: [number, string | undefined][]) => {
    const m = new Map(Object.entries(speakers));
    for (let end = t + ms; t < end; t += 20) if (f.update(m, t)) moves.push([t, f.holder]);
    return t;
  };

  it("gives an empty floor to the first speaker at once, and keeps it through silence", () => {
    const f = new Floor(s);
    const moves: [number, string | undefined][] = [];
    let t = run(f, 0, 200, {}, moves);
    t = run(f, t, 500, { a: -30 }, moves);
    run(f, t, 5000, {}, moves);
    expect(moves).toEqual([[200, "a"]]);
  });

  it("moves to the loudest speaker only after it held the floor for the hold time, and not again within the interval", () => {
    const f = new Floor(s);
    const moves: [number, string | undefined][] = [];
    let t = run(f, 0, 4000, { a: -30 }, moves);
    // b louder for 1 s: not long enough.
    t = run(f, t, 1000, { a: -30, b: -20 }, moves);
    expect(moves.map((m) => m[1])).toEqual(["a"]);
    t = run(f, t, 200, { a: -30 }, moves);
    // b louder for 2 s: it takes the floor 1.5 s in.
    const bFrom = t;
    t = run(f, t, 2000, { b: -20 }, moves);
    expect(moves.map((m) => m[1])).toEqual(["a", "b"]);
    expect(moves[1]![0] - bFrom).toBeGreaterThanOrEqual(1500);
    expect(moves[1]![0] - bFrom).toBeLessThan(1560);
    // a again at once, long enough: it waits for the 3 s interval since b took it.
    const bAt = moves[1]![0];
    run(f, t, 4000, { a: -20 }, moves);
    expect(moves.map((m) => m[1])).toEqual(["a", "b", "a"]);
    expect(moves[2]![0] - bAt).toBeGreaterThanOrEqual(3000);
  });

  it("frees the floor when its holder leaves", () => {
    const f = new Floor(s);
    const moves: [number, string | undefined][] = [];
    run(f, 0, 100, { a: -30 }, moves);
    f.release("a");
    expect(f.holder).toBeUndefined();
  });
});
