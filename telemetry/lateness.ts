// How late the media clocks fire, gathered between two reads of the server's load (LoadMonitor):
// every tick of every room's compositor and audio mixer notes its lateness here.

let samples: number[] = [];
const MAX_SAMPLES = 20_000;

/** A media clock fired `ms` after its tick was due. */
export function noteTickLateness(ms: number): void {
  if (samples.length < MAX_SAMPLES) samples.push(ms);
}

/** The lateness noted since the last take: its 90th percentile and maximum (0 with no ticks). */
export function takeTickLateness(): { p90: number; max: number; ticks: number } {
  const s = samples;
  samples = [];
  if (!s.length) return { p90: 0, max: 0, ticks: 0 };
  s.sort((a, b) => a - b);
  return { p90: s[Math.floor(s.length * 0.9)]!, max: s[s.length - 1]!, ticks: s.length };
}
