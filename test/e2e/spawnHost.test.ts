// The spawn host dies under a running call (kill -9): every ffmpeg child it started is stopped and
// replaced through a new host, and the call comes back, picture and sound. The server runs as its
// own process, as in production, so the host killed is the server's and not this test's.
import { readdirSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../server/main.ts";
import { closeAll, heardLevels, joinAll, longestGap, sleep, waitFor, waitForTiles } from "../support/call.ts";
import { startServerProcess, type ChildService } from "../support/serverProcess.ts";

let server: ChildService;
beforeAll(async () => {
  // One media worker: the room's process is the server's one Node child (its spawn host beside it).
  server = await startServerProcess({ MEDIA_WORKERS: "1" });
});
afterAll(async () => {
  await server?.killGroup();
});

/** Processes whose parent is `pid`, with their command lines. */
function childrenOf(pid: number): { pid: number; cmd: string[] }[] {
  const out: { pid: number; cmd: string[] }[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(f[1]) !== pid || f[0] === "Z") continue;
      out.push({ pid: Number(d), cmd: readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0") });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The spawn host of the room's process: the media worker's own (a media worker is a Node child that is not `-e`). */
const spawnHostOf = (serverPid: number) => {
  const worker = childrenOf(serverPid).find((c) => c.cmd[0]!.endsWith("node") && c.cmd[1] !== "-e");
  return worker && childrenOf(worker.pid).find((c) => c.cmd[1] === "-e");
};
const ffmpegChildren = (hostPid: number) => childrenOf(hostPid).filter((c) => c.cmd[0]!.endsWith("ffmpeg"));

describe("the server's spawn host", () => {
  it("is killed under a call: its children are stopped, a new host starts them again, and picture and sound come back", async () => {
    const ids = ["p0", "p1"];
    const ps = await joinAll({ url: server.url } as RunningServer, "hostdeath", ids);
    try {
      for (const p of ps) await waitForTiles(p, ids);
      const host = spawnHostOf(server.proc.pid!);
      expect(host, "the media worker runs its ffmpeg children through a spawn host").toBeDefined();
      const before = ffmpegChildren(host!.pid);
      // The two tile decoders at least (the composite encoder and the audio run in the server itself).
      expect(before.length).toBeGreaterThanOrEqual(2);
      process.kill(host!.pid, "SIGKILL");
      const t0 = performance.now();
      await waitFor("its ffmpeg children stopped", () => before.every((c) => isGone(c.pid)), 5000);
      // A new host, with the room's children again.
      await waitFor("a new host with children", () => {
        const h = spawnHostOf(server.proc.pid!);
        return !!h && h.pid !== host!.pid && ffmpegChildren(h.pid).length >= 2;
      }, 10_000);
      // Picture: every tile again, and frames that keep coming.
      for (const p of ps) await waitForTiles(p, ids, 10_000);
      const t1 = performance.now();
      await sleep(1500);
      for (const p of ps) expect(longestGap(p, t1), `${p.participantId} frames after the recovery`).toBeLessThan(500);
      // Sound: each hears the other again.
      await waitFor("sound back", () => heardLevels(ps[0]!, ids, 500).p1 > -25 && heardLevels(ps[1]!, ids, 500).p0 > -25, 10_000);
      const backS = (performance.now() - t0) / 1000;
      if (process.env.DEBUG_TEST) console.log(`picture and sound back ${backS.toFixed(1)} s after the host died`);
      expect(backS, "back within 10 s").toBeLessThan(10);
      expect(server.log()).toMatch(/spawn host died; stopping its ffmpeg children/);
    } finally {
      await closeAll(ps);
    }
  }, 60_000);
});

/** Not running (gone, or a zombie nobody reaps). */
function isGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] === "Z";
  } catch {
    return true;
  }
}
