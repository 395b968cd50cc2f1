// Hand-written SVG of a benchmark run (no dependency): x = participants; panel 1 the server's CPU
// (whole tree), the ffmpeg-only baseline, CPU per participant and marginal CPU per added
// participant; panel 2 per-participant bitrate down (MCU measured, SFU and mesh implied) and up;
// panel 3 the decoded pixel rate each receiver's downlink implies.
import type { Derived } from "./report.ts";

interface Series {
  name: string;
  color: string;
  dash?: string;
  points: [number, number][];
}

const W = 840;
const PANEL_H = 250;
const M = { left: 70, right: 220, top: 34, bottom: 40 };
const FONT = `font-family="DejaVu Sans, Arial, Helvetica, sans-serif"`;

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const num = (v: number) => (Math.round(v * 10) / 10).toString();

/** A "nice" axis maximum and tick step for data up to `max` (1, 2, 2.5 or 5 times a power of ten). */
function niceAxis(max: number, ticks = 5): { max: number; step: number } {
  if (!(max > 0)) return { max: 1, step: 0.2 };
  const raw = max / ticks;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw)!;
  return { max: Math.ceil(max / step - 1e-9) * step, step };
}

const fmtTick = (v: number, step: number) => v.toFixed(Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));

function panel(y0: number, title: string, yLabel: string, xs: number[], series: Series[]): string {
  const x0 = M.left;
  const pw = W - M.left - M.right;
  const ph = PANEL_H - M.top - M.bottom;
  const top = y0 + M.top;
  const [xMin, xMax] = xs.length > 1 ? [Math.min(...xs), Math.max(...xs)] : [xs[0] - 1, xs[0] + 1];
  const all = series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  const { max: yMax, step } = niceAxis(Math.max(0, ...all));
  const X = (x: number) => x0 + ((x - xMin) / (xMax - xMin)) * pw;
  const Y = (y: number) => top + ph - (y / yMax) * ph;
  const o: string[] = [];
  o.push(`<text x="${x0}" y="${y0 + 20}" font-size="14" font-weight="bold" ${FONT}>${esc(title)}</text>`);
  for (let v = 0; v <= yMax + step / 2; v += step) {
    o.push(`<line x1="${x0}" y1="${num(Y(v))}" x2="${x0 + pw}" y2="${num(Y(v))}" stroke="#e4e4e4" stroke-width="1"/>`);
    o.push(`<text x="${x0 - 6}" y="${num(Y(v) + 4)}" font-size="11" text-anchor="end" ${FONT}>${fmtTick(v, step)}</text>`);
  }
  for (const x of xs) {
    o.push(`<line x1="${num(X(x))}" y1="${top}" x2="${num(X(x))}" y2="${top + ph}" stroke="#f0f0f0" stroke-width="1"/>`);
    o.push(`<text x="${num(X(x))}" y="${top + ph + 16}" font-size="11" text-anchor="middle" ${FONT}>${x}</text>`);
  }
  o.push(`<rect x="${x0}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#888" stroke-width="1"/>`);
  o.push(`<text x="${x0 + pw / 2}" y="${top + ph + 33}" font-size="11" text-anchor="middle" ${FONT}>participants</text>`);
  o.push(`<text transform="translate(${x0 - 48} ${top + ph / 2}) rotate(-90)" font-size="11" text-anchor="middle" ${FONT}>${esc(yLabel)}</text>`);
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => Number.isFinite(p[1]));
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : "";
    if (pts.length > 1) {
      const d = pts.map((p, k) => `${k ? "L" : "M"}${num(X(p[0]))},${num(Y(p[1]))}`).join(" ");
      o.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`);
    }
    for (const p of pts) o.push(`<circle cx="${num(X(p[0]))}" cy="${num(Y(p[1]))}" r="3" fill="${s.color}"/>`);
    const ly = top + 8 + i * 18;
    const lx = x0 + pw + 14;
    o.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 22}" y2="${ly}" stroke="${s.color}" stroke-width="2"${dash}/>`);
    o.push(`<text x="${lx + 28}" y="${ly + 4}" font-size="11" ${FONT}>${esc(s.name)}</text>`);
  });
  return o.join("\n");
}

export function renderSvg(derived: Derived[], caption: string): string {
  const d = [...derived].sort((a, b) => a.n - b.n);
  const xs = d.map((p) => p.n);
  const line = (name: string, color: string, get: (p: Derived) => number | undefined, dash?: string): Series => ({
    name, color, dash, points: d.flatMap((p) => (get(p) === undefined ? [] : [[p.n, get(p)!] as [number, number]])),
  });
  const panels = [
    panel(30, "Server CPU (whole process tree)", "cores", xs, [
      line("server (tree)", "#d62728", (p) => p.cores),
      line("ffmpeg alone (baseline)", "#7f7f7f", (p) => p.baselineCores, "6 4"),
      line("server per participant", "#1f77b4", (p) => p.perParticipant),
      line("marginal per added one", "#2ca02c", (p) => p.marginal, "2 3"),
    ]),
    panel(30 + PANEL_H, "Bitrate per participant (RTP payload)", "kbit/s", xs, [
      line("down: MCU (measured)", "#d62728", (p) => p.client?.mcu.downKbps),
      line("down: SFU = mesh (n-1)", "#1f77b4", (p) => p.client?.sfu.downKbps),
      line("up: MCU = SFU (measured)", "#ff7f0e", (p) => p.client?.mcu.upKbps),
      line("up: mesh (n-1 copies)", "#8c564b", (p) => p.client?.mesh.upKbps, "3 5"),
    ]),
    panel(30 + 2 * PANEL_H, "Decode cost per receiver", "decoded Mpixel/s", xs, [
      line("MCU: 1 composite", "#d62728", (p) => p.client?.mcu.decodeMpxS),
      line("SFU / mesh: n-1 cameras", "#1f77b4", (p) => p.client?.sfu.decodeMpxS),
    ]),
  ];
  const H = 30 + 3 * PANEL_H + 10;
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${M.left}" y="20" font-size="12" fill="#444" ${FONT}>${esc(caption)}</text>`,
    ...panels,
    `</svg>`,
    "",
  ].join("\n");
}
