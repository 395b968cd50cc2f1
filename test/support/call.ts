// Shared steps of the end-to-end call tests: start a server, seat synthetic participants,
// and read what a participant sees (tile colours) and hears (tone levels).
import { fixturePaths, PALETTE, participant } from "../../fixtures/participants.ts";
import { generateFixtures } from "../../fixtures/generate.ts";
import { gridLayout } from "../../mixer/layout.ts";
import type { Config } from "../../server/config.ts";
import { startServer, type RunningServer } from "../../server/main.ts";
import { closestColor, meanRgb, type Rgb } from "./pixels.ts";
import { SyntheticParticipant, VIEW_H, VIEW_W, type SyntheticOptions } from "./SyntheticParticipant.ts";
import { toneLevelsDb } from "./tones.ts";

/**
 * A server in this process. Its rooms stay in this process too (mediaWorkers 0), so a test can read
 * server.rooms and the metrics directly; media workers (the product's default) are tested where
 * they are asked for (media-workers.test.ts) and in every test that starts a server process.
 */
export async function startTestServer(overrides: Partial<Config> = {}): Promise<RunningServer> {
  await generateFixtures();
  return startServer({ port: 0, host: "127.0.0.1", logLevel: (process.env.LOG_LEVEL as "info") ?? "warn", mediaWorkers: 0, ...overrides });
}

export async function joinAll(
  server: RunningServer,
  room: string,
  ids: string[],
  opts: Pick<SyntheticOptions, "videoLoss" | "silent" | "sends" | "token" | "quality" | "audioPayload" | "videoPayload" | "trickleBeforeOffer" | "chat"> = {},
) {
  const out: SyntheticParticipant[] = [];
  for (const id of ids) {
    const p = new SyntheticParticipant({ url: server.url, room, name: id, ...fixturePaths(id, "solid"), decode: true, ...opts });
    await p.join();
    out.push(p);
  }
  return out;
}

/** Polls `fn` (sync or async) until it gives a truthy value; a promise is awaited, never taken as the answer. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The middle of tile i of an n-tile grid, in the viewer's scaled-down frame (avoids letterbox bars and edges). */
export function tileCore(i: number, n: number) {
  const t = gridLayout(n, 1280, 720)[i];
  const sx = VIEW_W / 1280;
  const sy = VIEW_H / 720;
  return { x: (t.x + t.w * 0.35) * sx, y: (t.y + t.h * 0.3) * sy, w: t.w * 0.3 * sx, h: t.h * 0.4 * sy };
}

/** A strip at the left edge of tile i, where a 4:3 picture in a 16:9 tile leaves a letterbox bar. */
export function tileEdge(i: number, n: number) {
  const t = gridLayout(n, 1280, 720)[i];
  return { x: (t.x + t.w * 0.02) * (VIEW_W / 1280), y: (t.y + t.h * 0.3) * (VIEW_H / 720), w: t.w * 0.06 * (VIEW_W / 1280), h: t.h * 0.4 * (VIEW_H / 720) };
}

export function tileRgb(p: SyntheticParticipant, i: number, n: number): Rgb {
  if (!p.latestFrame) throw new Error("no decoded frame yet");
  return meanRgb(p.latestFrame, VIEW_W, tileCore(i, n));
}

/** Colour names of each tile of an n-tile grid as `p` currently sees them. */
export function tileColors(p: SyntheticParticipant, n: number): (string | undefined)[] {
  return Array.from({ length: n }, (_, i) => closestColor(tileRgb(p, i, n), PALETTE));
}

/** Waits until `p`'s composite shows exactly these colours in grid order. */
export async function waitForTiles(p: SyntheticParticipant, ids: string[], timeoutMs = 10_000): Promise<void> {
  const want = ids.map((id) => participant(id).color.name);
  let last: (string | undefined)[] = [];
  try {
    await waitFor(`tiles ${want.join(",")}`, () => {
      if (!p.latestFrame) return false;
      last = tileColors(p, ids.length);
      return last.every((c, i) => c === want[i]);
    }, timeoutMs);
  } catch (err) {
    throw new Error(`${(err as Error).message}; last seen ${JSON.stringify(last)}`);
  }
}

/** dB levels of each participant's tone in the last `ms` of what `p` hears. */
export function heardLevels(p: SyntheticParticipant, ids: string[], ms = 1000): Record<string, number> {
  const audio = p.recentAudio(ms);
  const levels = toneLevelsDb(audio, 48000, ids.map((id) => participant(id).toneHz));
  return Object.fromEntries(ids.map((id, i) => [id, levels[i]]));
}

/** Longest gap (ms) between consecutive composite frames received after `since`. */
export function longestGap(p: SyntheticParticipant, since: number, until = performance.now()): number {
  const ts = p.frameTimes.filter((t) => t >= since && t <= until);
  let gap = 0;
  for (let i = 1; i < ts.length; i++) gap = Math.max(gap, ts[i] - ts[i - 1]);
  if (ts.length) gap = Math.max(gap, ts[0] - since, until - ts[ts.length - 1]);
  return gap;
}

/** Composite frames a second `p` received over the windows `ws` together. */
export function windowsFps(p: SyntheticParticipant, ws: { t0: number; t1: number }[]): number {
  const frames = ws.reduce((a, w) => a + p.frameTimes.filter((t) => t >= w.t0 && t <= w.t1).length, 0);
  return frames / ws.reduce((a, w) => a + (w.t1 - w.t0) / 1000, 0);
}

/**
 * The frame rate an attack must leave a call: 27 fps, or within 2 fps of what the same call got
 * without the attack (the windows between the attack's), whichever is lower. An absolute floor
 * alone measured the machine: on 2026-12-03 this one gave calls 25–27 fps under these tests with
 * the code of before that day too (d8408fb), the steal time of its host included.
 */
export const attackedFpsFloor = (baseFps: number) => Math.min(27, baseFps - 2);

export async function closeAll(ps: SyntheticParticipant[]): Promise<void> {
  await Promise.all(ps.map((p) => p.close()));
}
