// Summarises a V8 .cpuprofile (from `node --cpu-prof`): self and inclusive time per function,
// aggregated over call sites; recursion counts once per sample.
import fs from "node:fs";
import path from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionCost {
  name: string;
  where: string;
  selfMs: number;
  inclusiveMs: number;
  inclusivePct: number;
}

const IGNORED = new Set(["(root)", "(program)", "(idle)"]);

function label(n: ProfileNode, root: string): { key: string; name: string; where: string } {
  const cf = n.callFrame;
  const name = cf.functionName || "(anonymous)";
  let file = cf.url.replace(/^file:\/\//, "");
  const nm = file.lastIndexOf("node_modules/");
  file = nm >= 0 ? file.slice(nm + 13) : file.startsWith(root) ? path.relative(root, file) : file;
  // tsx-compiled project files report line 0 (no source-mapped positions): name the file only.
  const where = file && cf.lineNumber > 0 ? `${file}:${cf.lineNumber + 1}` : file;
  return { key: `${name}@${where}`, name, where };
}

/** Top `limit` functions by inclusive and by self time, excluding idle. */
export function summariseProfile(file: string, root: string, limit = 20): { totalMs: number; busyMs: number; top: FunctionCost[]; topSelf: FunctionCost[] } {
  const p = JSON.parse(fs.readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const labels = new Map<number, ReturnType<typeof label>>();
  for (const n of p.nodes) labels.set(n.id, label(n, root));
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const names = new Map<string, { name: string; where: string }>();
  let busy = 0;
  p.samples.forEach((id, i) => {
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000; // delta i+1 is the duration of sample i
    const leaf = labels.get(id)!;
    if (leaf.name === "(idle)") return;
    busy += dt;
    self.set(leaf.key, (self.get(leaf.key) ?? 0) + dt);
    const onStack = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const l = labels.get(cur)!;
      if (IGNORED.has(l.name) || onStack.has(l.key)) continue;
      onStack.add(l.key);
      names.set(l.key, l);
      incl.set(l.key, (incl.get(l.key) ?? 0) + dt);
    }
  });
  const cost = (k: string): FunctionCost => {
    const ms = incl.get(k) ?? 0;
    return { ...names.get(k)!, selfMs: self.get(k) ?? 0, inclusiveMs: ms, inclusivePct: (100 * ms) / Math.max(1, busy) };
  };
  const topBy = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, limit).map(([k]) => cost(k));
  return { totalMs: (p.endTime - p.startTime) / 1000, busyMs: busy, top: topBy(incl), topSelf: topBy(self) };
}

export function formatProfile(s: ReturnType<typeof summariseProfile>): string {
  const lines = [`  profile: ${(s.busyMs / 1000).toFixed(1)} s busy of ${(s.totalMs / 1000).toFixed(1)} s; top inclusive (% of busy, self ms):`];
  for (const f of s.top) {
    lines.push(`  ${f.inclusivePct.toFixed(1).padStart(5)}%  ${f.selfMs.toFixed(0).padStart(6)}  ${f.name}  ${f.where}`);
  }
  lines.push(`  top self (self ms, % of busy):`);
  for (const f of s.topSelf.slice(0, 12)) {
    lines.push(`  ${f.selfMs.toFixed(0).padStart(6)}  ${((100 * f.selfMs) / Math.max(1, s.busyMs)).toFixed(1).padStart(5)}%  ${f.name}  ${f.where}`);
  }
  return lines.join("\n");
}
