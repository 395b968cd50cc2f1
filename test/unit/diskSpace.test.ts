import { describe, expect, it } from "vitest";
import { belowFloor, freeMb, measureFreeMb } from "../../server/recordings/diskSpace.ts";

describe("free disk space against RECORDINGS_MIN_FREE_MB", () => {
  it("counts the blocks an unprivileged process may use, in MB", () => {
    expect(freeMb({ bavail: 2560, bsize: 4096 })).toBe(10);
    expect(freeMb({ bavail: 2560n, bsize: 4096n })).toBe(10);
  });

  it("is below the floor only under it, and a floor of 0 is off", () => {
    expect(belowFloor(99, 100)).toBe(true);
    expect(belowFloor(100, 100)).toBe(false);
    expect(belowFloor(0, 0)).toBe(false);
  });

  it("measures a real directory", async () => {
    expect(await measureFreeMb(".")).toBeGreaterThan(0);
  });
});
