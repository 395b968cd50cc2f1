// The arithmetic of media workers: how many MEDIA_WORKERS means, and each worker's slice of
// RTC_PORT_RANGE (disjoint, inside the range, together covering all but the remainder); and the
// ledger that holds the server-wide caps while rooms are spread over workers.
import os from "node:os";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../server/config.ts";
import { portSlice, workerCount } from "../../server/media/MediaWorkers.ts";
import { SeatLedger } from "../../server/media/SeatLedger.ts";

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

describe("the seat ledger (server-wide caps across workers)", () => {
  const config = { ...loadConfig({}), maxParticipantsTotal: 4, maxRooms: 2, maxJoinsPerIp: 3, maxRoomsPerIp: 2 };
  const open = new Set<string>();
  const ledger = () => new SeatLedger<{ address: string }>(config, (r) => open.has(r), () => open.size);

  it("holds joins and rooms per address, rooms and participants server-wide; a release frees the seat", () => {
    const l = ledger();
    const a = [1, 2, 3, 4].map(() => ({ address: "10.0.0.1" }));
    l.reserve(a[0]!, "r1");
    open.add("r1");
    l.reserve(a[1]!, "r2");
    open.add("r2");
    expect(() => l.reserve(a[2]!, "r3")).toThrow(/MAX_ROOMS_PER_IP/);
    l.reserve(a[2]!, "r1");
    expect(() => l.reserve(a[3]!, "r1")).toThrow(/MAX_JOINS_PER_IP/);
    expect(() => l.reserve({ address: "10.0.0.2" }, "r3")).toThrow(/maximum of 2 rooms/);
    l.reserve({ address: "10.0.0.2" }, "r2");
    expect(() => l.reserve({ address: "10.0.0.3" }, "r2")).toThrow(/the server is full \(4 participants\)/);
    expect(l.participants).toBe(4);
    l.release(a[2]!);
    l.reserve(a[3]!, "r2");
    expect(l.participants).toBe(4);
  });
});
