import { describe, expect, it } from "vitest";
import { LinkAdaptation } from "../../mixer/linkAdaptation.ts";

/** Feeds one report a second with the given loss for `seconds`; returns the rung after each report. */
function run(a: LinkAdaptation, t0: number, seconds: number, loss: number): { rungs: number[]; t: number } {
  const rungs: number[] = [];
  let t = t0;
  for (let i = 0; i < seconds; i++) {
    t += 1000;
    a.report(loss, t);
    rungs.push(a.rung);
  }
  return { rungs, t };
}

describe("LinkAdaptation", () => {
  it("steps down after two lossy reports, one rung per 2 s, and not below the last rung", () => {
    const a = new LinkAdaptation(3, 0, 0);
    const { rungs } = run(a, 0, 8, 0.2);
    expect(rungs).toEqual([0, 1, 1, 2, 2, 2, 2, 2]);
  });

  it("weighs two reports together: 8 % then 14 % is 11 %, enough; 30 % then 3 % is a burst, not enough", () => {
    const a = new LinkAdaptation(3, 0, 0);
    a.report(0.08, 1000, 50);
    expect(a.report(0.14, 2000, 50)).toBe(1);
    const b = new LinkAdaptation(3, 0, 0);
    b.report(0.3, 1000, 50);
    expect(b.report(0.03, 2000, 50)).toBeUndefined();
  });

  it("ignores a single lossy report (a burst) and loss between 2 % and 10 %", () => {
    const a = new LinkAdaptation(3, 0, 0);
    expect(a.report(0.3, 1000)).toBeUndefined();
    expect(a.report(0.0, 2000)).toBeUndefined();
    expect(a.report(0.3, 3000)).toBeUndefined();
    expect(run(a, 3000, 30, 0.05).rungs.every((r) => r === 0)).toBe(true);
  });

  it("climbs one rung after 10 clean seconds, and any loss over 2 % restarts the count", () => {
    const a = new LinkAdaptation(3, 2, 0);
    let r = run(a, 0, 9, 0.0);
    expect(r.rungs.at(-1)).toBe(2);
    a.report(0.05, r.t + 1000); // 5 %: not enough to go down, enough to restart the clean count
    r = run(a, r.t + 1000, 9, 0.0);
    expect(r.rungs.at(-1)).toBe(2);
    r = run(a, r.t, 2, 0.0);
    expect(r.rungs.at(-1)).toBe(1);
    r = run(a, r.t, 10, 0.0);
    expect(r.rungs.at(-1)).toBe(0);
  });

  it("does not flap on a link that alternates between lossy and clean every few seconds", () => {
    const a = new LinkAdaptation(3, 0, 0);
    let t = 0;
    let switches = 0;
    let last = a.rung;
    for (let cycle = 0; cycle < 10; cycle++) {
      for (const loss of [0.2, 0.2, 0, 0, 0, 0]) {
        t += 1000;
        a.report(loss, t);
        if (a.rung !== last) switches++;
        last = a.rung;
      }
    }
    expect(a.rung).toBe(2); // it went down and stayed down: never 10 clean seconds
    expect(switches).toBe(2);
  });

  it("steps down when two reports in a row say ≥ 50 ms of jitter with no loss, and not on one spike", () => {
    const a = new LinkAdaptation(3, 0, 0);
    expect(a.report(0, 1000, 100, 120)).toBeUndefined(); // one spike (a keyframe through a slow hop)
    expect(a.report(0, 2000, 100, 10)).toBeUndefined();
    expect(a.report(0, 3000, 100, 60)).toBeUndefined();
    expect(a.report(0, 4000, 100, 49)).toBeUndefined(); // just under: no
    expect(a.report(0, 5000, 100, 55)).toBeUndefined();
    expect(a.report(0, 6000, 100, 70)).toBe(1);
  });

  it("climbs only after 10 s with jitter ≤ 40 ms as well as loss ≤ 2 %", () => {
    const a = new LinkAdaptation(3, 1, 0);
    let t = 0;
    for (let i = 0; i < 20; i++) expect(a.report(0, (t += 1000), 100, i % 2 ? 45 : 20)).toBeUndefined(); // 45 ms every other report: stays
    for (let i = 0; i < 9; i++) expect(a.report(0, (t += 1000), 100, 35)).toBeUndefined();
    // A healthy LTE link (10–40 ms) that went down on a loss burst climbs back.
    expect(a.report(0, (t += 1000), 100, 35)).toBe(0);
  });
});
