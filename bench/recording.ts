// What recording costs: in one running room, windows with the recording off and on alternate
// (off, on, off, on, …), so drift and other load fall on both alike. Reported: the whole tree's
// extra CPU while recording (on − off), and, measured directly, the recorder ffmpeg's own CPU.
import { TreeSampler, type TreeUsage } from "./proctree.ts";

export interface RecordingCost {
  windows: number;
  windowS: number;
  offCores: number[];
  onCores: number[];
  /** Mean tree cores with recording on minus off. */
  treeDeltaCores: number;
  /** Mean Node (root process) cores on minus off. */
  nodeDeltaCores: number;
  /** The recorder ffmpeg's own CPU while recording (cores). */
  recorderCores: number;
  /** Mean cores by role in the off and the on windows. */
  offByRole: Record<string, number>;
  onByRole: Record<string, number>;
}

export interface RecordingBenchOptions {
  url: string;
  room: string;
  serverPid: number;
  classify: (pid: number, argv: string[]) => string;
  /** Pairs of (off, on) windows. */
  pairs: number;
  windowS: number;
  countdown: (what: string, s: number) => Promise<void>;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
function meanByRole(us: TreeUsage[]): Record<string, number> {
  const roles = new Set(us.flatMap((u) => Object.keys(u.byRole)));
  return Object.fromEntries([...roles].map((r) => [r, mean(us.map((u) => u.byRole[r] ?? 0))]));
}

async function api(url: string, method: "POST" | "DELETE", room: string): Promise<{ id: string }> {
  const r = await fetch(`${url}/api/rooms/${room}/recording`, { method });
  if (!r.ok) throw new Error(`${method} recording: ${r.status} ${await r.text()}`);
  return (await r.json()) as { id: string };
}

/** Post-processing (after the meeting, at nice 10) is not the live cost: let it finish first. */
async function processed(url: string, id: string): Promise<void> {
  for (const t0 = Date.now(); Date.now() - t0 < 120_000; await new Promise((r) => setTimeout(r, 250))) {
    const m = (await (await fetch(`${url}/api/recordings/${id}`)).json()) as { status: string; error?: string };
    if (m.status === "done") return;
    if (m.status === "failed") throw new Error(`post-processing failed: ${m.error}`);
  }
  throw new Error(`recording ${id} not post-processed within 120 s`);
}

async function window(o: RecordingBenchOptions, what: string): Promise<TreeUsage> {
  const s = new TreeSampler(o.serverPid, o.classify);
  s.start();
  await o.countdown(what, o.windowS);
  return s.stop();
}

export async function measureRecordingCost(o: RecordingBenchOptions): Promise<RecordingCost> {
  const off: TreeUsage[] = [];
  const on: TreeUsage[] = [];
  for (let i = 0; i < o.pairs; i++) {
    off.push(await window(o, `recording off ${i + 1}/${o.pairs}`));
    const { id } = await api(o.url, "POST", o.room);
    await new Promise((r) => setTimeout(r, 1000)); // the recorder's start-up is not the steady cost
    try {
      on.push(await window(o, `recording on ${i + 1}/${o.pairs}`));
    } finally {
      await api(o.url, "DELETE", o.room);
    }
    await processed(o.url, id);
    await new Promise((r) => setTimeout(r, 1000));
  }
  return {
    windows: o.pairs,
    windowS: o.windowS,
    offCores: off.map((u) => u.cores),
    onCores: on.map((u) => u.cores),
    treeDeltaCores: mean(on.map((u) => u.cores)) - mean(off.map((u) => u.cores)),
    nodeDeltaCores: mean(on.map((u) => u.rootCores)) - mean(off.map((u) => u.rootCores)),
    recorderCores: mean(on.map((u) => u.byRole.recorder ?? 0)),
    offByRole: meanByRole(off),
    onByRole: meanByRole(on),
  };
}

const fmt = (r: Record<string, number>) => Object.entries(r).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(", ");

export function formatRecordingCost(n: number, c: RecordingCost): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
  return (
    `n=${n} recording: +${pct(c.treeDeltaCores)} of a core for the whole tree (on ${mean(c.onCores).toFixed(3)} vs off ${mean(c.offCores).toFixed(3)} cores, ` +
    `${c.windows}×${c.windowS} s alternating); recorder ffmpeg ${pct(c.recorderCores)}, node +${pct(c.nodeDeltaCores)}\n` +
    `  by role, off: ${fmt(c.offByRole)}\n  by role, on:  ${fmt(c.onByRole)}`
  );
}
