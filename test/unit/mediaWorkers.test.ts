// The arithmetic of media workers: how many MEDIA_WORKERS means, and each worker's slice of
// RTC_PORT_RANGE (disjoint, inside the range, together covering all but the remainder).
import os from "node:os";
import { describe, expect, it } from "vitest";
import { portSlice, workerCount } from "../../server/media/MediaWorkers.ts";

describe("media workers", () => {
  it("auto is one per core; a number is that many", () => {
    expect(workerCount("auto")).toBe(os.availableParallelism());
    expect(workerCount(3)).toBe(3);
    expect(workerCount(0)).toBe(0);
  });

  it("splits RTC_PORT_RANGE into disjoint slices, one per worker", () => {
    expect(portSlice(undefined, 0, 2)).toBeUndefined();
    const slices = [0, 1, 2].map((i) => portSlice([40000, 40299], i, 3)!);
    expect(slices).toEqual([[40000, 40099], [40100, 40199], [40200, 40299]]);
    const odd = [0, 1].map((i) => portSlice([40000, 40100], i, 2)!);
    expect(odd).toEqual([[40000, 40049], [40050, 40099]]);
    for (const [lo, hi] of odd) expect(hi).toBeGreaterThan(lo);
  });
});
