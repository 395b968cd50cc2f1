// What the CPU benchmark records per point, the figures derived from it (per-participant and
// marginal CPU, packet loss, and the client side of an MCU vs what an SFU or a mesh would need
// for the same room), and the printed tables.
import type { LatencyResult } from "./latency.ts";
import type { TreeUsage } from "./proctree.ts";
import type { summariseProfile } from "./profile.ts";
import type { RecordingCost } from "./recording.ts";

type Kind = "video" | "audio";
const KINDS: Kind[] = ["video", "audio"];

/** Cumulative RTP counters of one peer connection, from werift's getStats(). Bytes are RTP payload. */
export interface RtpCounters {
  at: number; // performance.now()
  bytesSent: Record<Kind, number>;
  bytesReceived: Record<Kind, number>;
  packetsReceived: Record<Kind, number>;
  packetsLost: Record<Kind, number>;
}

/** One participant over the measurement window. */
export interface RtpWindow {
  upKbps: Record<Kind, number>;
  downKbps: Record<Kind, number>;
  packetsReceived: Record<Kind, number>;
  /** Sequence-number gaps seen by the receiver (werift's inbound-rtp packetsLost, window delta). */
  packetsLost: Record<Kind, number>;
}

const zero = (): Record<Kind, number> => ({ video: 0, audio: 0 });

export async function rtpCounters(pc: { getStats(): Promise<Map<string, unknown>> }): Promise<RtpCounters> {
  const c: RtpCounters = { at: performance.now(), bytesSent: zero(), bytesReceived: zero(), packetsReceived: zero(), packetsLost: zero() };
  for (const s of (await pc.getStats()).values()) {
    const st = s as { type?: string; kind?: string; [k: string]: unknown };
    const kind: Kind = st.kind === "audio" ? "audio" : "video";
    const num = (k: string) => (typeof st[k] === "number" ? (st[k] as number) : 0);
    if (st.type === "outbound-rtp") c.bytesSent[kind] += num("bytesSent");
    if (st.type === "inbound-rtp") {
      c.bytesReceived[kind] += num("bytesReceived");
      c.packetsReceived[kind] += num("packetsReceived");
      c.packetsLost[kind] += num("packetsLost");
    }
  }
  return c;
}

export function rtpWindow(a: RtpCounters, b: RtpCounters): RtpWindow {
  const s = Math.max(1e-3, (b.at - a.at) / 1000);
  const per = (f: (c: RtpCounters) => Record<Kind, number>, scale: number) =>
    Object.fromEntries(KINDS.map((k) => [k, Math.max(0, f(b)[k] - f(a)[k]) * scale])) as Record<Kind, number>;
  return {
    upKbps: per((c) => c.bytesSent, 8 / s / 1000),
    downKbps: per((c) => c.bytesReceived, 8 / s / 1000),
    packetsReceived: per((c) => c.packetsReceived, 1),
    packetsLost: per((c) => c.packetsLost, 1),
  };
}

export interface ReceiverStats {
  /** Complete composite frames per second. */
  fps: number;
  /** Composite video payload kbit/s (counted by SyntheticParticipant). */
  downlinkKbps: number;
  rtp: RtpWindow;
}

export interface ServerPoint {
  usage: TreeUsage;
  receivers: ReceiverStats[];
  medianFps: number;
  minFps: number;
  downlinkKbps: number;
  /** The benchmark process itself (the n werift participants), cores. */
  clientCores: number;
  /** Machine CPU used by processes outside the benchmark during the window, cores (noise). */
  otherCores: number;
  metricsDelta: Record<string, number>;
  /** The server's overload level at the end of the window (mcu_overload_level). */
  overloadLevel?: number;
  serverLog: string[];
  profile?: ReturnType<typeof summariseProfile> & { file: string };
  /** Recording off/on windows in the same room (only at --record-at n). */
  recording?: RecordingCost;
}

export interface BaselinePoint {
  usage: TreeUsage;
  outputFps: number;
  otherCores: number;
}

export interface Point {
  latency?: LatencyResult;
  n: number;
  /** The first of --engines (the main tables' figures). */
  server?: ServerPoint;
  /** The first of --baselines. */
  baseline?: BaselinePoint;
  /** Every VIDEO_ENGINE measured at this n, the same run. */
  engines?: Record<string, ServerPoint>;
  /** Every baseline measured at this n: cli (the bundled ffmpeg program), libs (the server's FFmpeg libraries alone). */
  baselines?: Record<string, BaselinePoint>;
  errors: string[];
}

/** One architecture's cost for one receiver: video streams (audio streams are the same count), payload kbit/s, decoded pixels. */
export interface ClientSide {
  streamsUp: number;
  streamsDown: number;
  upKbps: number;
  downKbps: number;
  /** Decoded pixels per second implied by the video streams received, millions. */
  decodeMpxS: number;
}

export interface Derived {
  n: number;
  cores?: number;
  perParticipant?: number;
  /** (cores - cores at the previous n) / (n - previous n). */
  marginal?: number;
  baselineCores?: number;
  ratio?: number;
  rssMB?: number;
  pssMB?: number;
  medianFps?: number;
  minFps?: number;
  /** Per receiver, mean: composite video + mixed audio, payload kbit/s. */
  downKbps?: number;
  /** Packets lost in the window (video + audio): summed over receivers, worst receiver, share of expected. */
  lost?: { total: number; maxPerReceiver: number; videoTotal: number; pct: number };
  /** Per participant, mean: camera + microphone, payload kbit/s. */
  upKbps?: number;
  client?: { mcu: ClientSide; sfu: ClientSide; mesh: ClientSide };
}

export interface Geometry {
  width: number; // composite
  height: number;
  /** Participants' camera resolution and frame rate (what an SFU or mesh receiver decodes per stream). */
  camWidth: number;
  camHeight: number;
  camFps: number;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const sum = (r: Record<Kind, number>) => r.video + r.audio;

export function derive(points: Point[], g: Geometry): Derived[] {
  const out = points.map(({ n, server: s, baseline: b }): Derived => {
    const d: Derived = { n, baselineCores: b?.usage.cores };
    if (!s) return d;
    const rx = s.receivers;
    const ups = rx.map((r) => sum(r.rtp.upKbps));
    const totalUp = ups.reduce((a, x) => a + x, 0);
    const lost = rx.map((r) => sum(r.rtp.packetsLost));
    const lostTotal = lost.reduce((a, x) => a + x, 0);
    const expected = lostTotal + rx.reduce((a, r) => a + sum(r.rtp.packetsReceived), 0);
    const camPx = (g.camWidth * g.camHeight * g.camFps) / 1e6;
    // SFU: forwards every other participant's streams; mesh: the same down, and one upload per peer.
    const sfuDown = mean(ups.map((u) => totalUp - u));
    Object.assign(d, {
      cores: s.usage.cores,
      perParticipant: s.usage.cores / n,
      ratio: b ? s.usage.cores / b.usage.cores : undefined,
      rssMB: s.usage.peakRssMB,
      pssMB: s.usage.peakPssMB,
      medianFps: s.medianFps,
      minFps: s.minFps,
      downKbps: mean(rx.map((r) => sum(r.rtp.downKbps))),
      lost: { total: lostTotal, maxPerReceiver: Math.max(0, ...lost), videoTotal: rx.reduce((a, r) => a + r.rtp.packetsLost.video, 0), pct: expected ? (100 * lostTotal) / expected : 0 },
      upKbps: mean(ups),
      client: {
        mcu: { streamsUp: 1, streamsDown: 1, upKbps: mean(ups), downKbps: mean(rx.map((r) => sum(r.rtp.downKbps))), decodeMpxS: (g.width * g.height * s.medianFps) / 1e6 },
        sfu: { streamsUp: 1, streamsDown: n - 1, upKbps: mean(ups), downKbps: sfuDown, decodeMpxS: (n - 1) * camPx },
        mesh: { streamsUp: n - 1, streamsDown: n - 1, upKbps: (n - 1) * mean(ups), downKbps: sfuDown, decodeMpxS: (n - 1) * camPx },
      },
    } satisfies Partial<Derived>);
    return d;
  });
  const measured = out.filter((d) => d.cores !== undefined).sort((a, b) => a.n - b.n);
  for (let i = 1; i < measured.length; i++) {
    const [p, c] = [measured[i - 1], measured[i]];
    if (c.n > p.n) c.marginal = (c.cores! - p.cores!) / (c.n - p.n);
  }
  return out;
}

const f = (v: number | undefined, d: number) => (v === undefined || !Number.isFinite(v) ? "-" : v.toFixed(d));

function table(log: (m: string) => void, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join(" | ");
  log(line(header));
  log(widths.map((w) => "-".repeat(w)).join("-|-"));
  for (const r of rows) log(line(r));
}

export function printTables(log: (m: string) => void, points: Point[], derived: Derived[], g: Geometry, cpus: number): void {
  log("");
  table(log,
    ["n", "server CPU", "per part.", "marginal", "baseline", "ratio", "tree RSS MB", "PSS MB", "PSS/part.", "fps med/min", "down kbit/s",
      "lost pkts", "lost %", "node only", "client CPU", "busy %", "base fps", "other load"],
    points.map(({ n, server: s, baseline: b }, i) => {
      const d = derived[i];
      return [
        String(n), f(d.cores, 3), f(d.perParticipant, 3), f(d.marginal, 3), f(d.baselineCores, 3), f(d.ratio, 2),
        f(d.rssMB, 0), f(d.pssMB, 0), f(d.pssMB !== undefined ? d.pssMB / n : undefined, 0), `${f(d.medianFps, 1)}/${f(d.minFps, 1)}`, f(d.downKbps, 0),
        d.lost ? `${d.lost.total} (max ${d.lost.maxPerReceiver})` : "-", f(d.lost?.pct, 2),
        f(s?.usage.rootCores, 3), f(s?.clientCores, 2), f(s && 100 * s.usage.machineBusy, 0), f(b?.outputFps, 1),
        `${f(s?.otherCores, 2)}/${f(b?.otherCores, 2)}`,
      ];
    }));
  log(`CPU in cores (CPU-seconds per second) of the whole process tree; "marginal" is the CPU added per added participant since the ` +
    `previous n; "ratio" is server / baseline (ffmpeg alone); "fps" is composite frames delivered per receiver (median/min); ` +
    `"down" is per receiver (composite video + mixed audio, RTP payload); "lost pkts" is RTP sequence gaps summed over receivers ` +
    `(worst receiver), video + audio, over the window; "node only" is the server's own process; "client CPU" is this benchmark ` +
    `process (the participants); "busy %" is the whole machine (${cpus} CPUs) during the server window; "other load" is CPU used ` +
    `by unrelated processes during the server/baseline windows (cores).`);

  log("");
  log("The media plane's own health over the same window (from /metrics; steady state: encoder spawns must be 0)");
  const md = (p: Point, k: string) => String(p.server?.metricsDelta[k] ?? 0);
  table(log,
    ["n", "encoder spawns", "audio ticks skipped", "audio ticks caught up", "video ticks late", "frames left out: overload", "still", "encoder busy", "overload level"],
    points.map((p) => [
      String(p.n), md(p, 'mcu_composite_encoder_spawns_total'), md(p, "mcu_audio_ticks_skipped_total"), md(p, "mcu_audio_ticks_caught_up_total"),
      md(p, "mcu_composite_late_ticks_total"), md(p, 'mcu_composite_frames_skipped_total{reason="overload"}'), md(p, 'mcu_composite_frames_skipped_total{reason="still"}'),
      md(p, 'mcu_composite_frames_skipped_total{reason="encoder_busy"}'), p.server?.overloadLevel === undefined ? "-" : String(p.server.overloadLevel),
    ]));

  log("");
  log(`Client side, per participant: MCU as measured, beside what an SFU or a mesh would need for the same room (from the measured uplinks)`);
  const cs = (c: ClientSide | undefined) => (c ? [`${c.streamsUp}/${c.streamsDown}`, `${f(c.upKbps, 0)}/${f(c.downKbps, 0)}`, f(c.decodeMpxS, 1)] : ["-", "-", "-"]);
  table(log,
    ["n", "MCU streams", "MCU kbit/s up/down", "MCU decode Mpx/s", "SFU streams", "SFU kbit/s up/down", "SFU decode Mpx/s",
      "mesh streams", "mesh kbit/s up/down", "mesh decode Mpx/s"],
    derived.map((d) => [String(d.n), ...cs(d.client?.mcu), ...cs(d.client?.sfu), ...cs(d.client?.mesh)]));
  log(`"streams" are video streams up/down per participant (audio streams: the same count); kbit/s is RTP payload, camera + ` +
    `microphone up, video + audio down; the SFU/mesh figures are computed from each participant's measured uplink (an SFU ` +
    `forwards the other n-1 uplinks; a mesh also uploads its own n-1 times). Decode Mpx/s is the decoded pixel rate that implies: ` +
    `MCU one ${g.width}x${g.height} composite at the delivered fps; SFU/mesh n-1 streams of ${g.camWidth}x${g.camHeight}@${g.camFps}.`);
  const lat = points.filter((p) => p.latency);
  if (!lat.length) return;
  log("");
  table(log, ["n", "video ms median", "video p90", "video p95", "audio ms median", "audio p90", "audio p95", "A/V offset ms"],
    lat.map((p) => [String(p.n), f(p.latency!.video.median, 1), f(p.latency!.video.p90, 1), f(p.latency!.video.p95, 1), f(p.latency!.audio.median, 1),
      f(p.latency!.audio.p90, 1), f(p.latency!.audio.p95, 1), f(p.latency!.avOffsetMs, 1)]));
  log(`Latency end to end (sender werift → server mix → receiver werift + decode, loopback): from sending a picture/tone flip ` +
    `to seeing it in the composite / hearing it in the mix; A/V offset = video − audio (> 0: picture later than sound).`);
}

/** Each VIDEO_ENGINE beside each baseline, per n (same run, ratios). */
export function printMediaPlane(log: (m: string) => void, points: Point[]): void {
  const rows: string[][] = [];
  for (const p of points) {
    for (const [engine, s] of Object.entries(p.engines ?? {})) {
      const r = (k: string) => p.baselines?.[k] ? f(s.usage.cores / p.baselines[k]!.usage.cores, 2) : "-";
      const role = (re: RegExp) => Object.entries(s.usage.byRole).filter(([k]) => re.test(k)).reduce((a, [, v]) => a + v, 0);
      const dec = p.baselines?.decode ? f(role(/tile decoders/) / p.baselines.decode.usage.cores, 2) : "-";
      const md = (k: string) => String(s.metricsDelta[k] ?? 0);
      rows.push([
        String(p.n), engine, f(s.usage.cores, 3), f(s.usage.rootCores, 3), f(role(/encoder/), 3), f(role(/tile decoders/), 3), dec,
        r("cli"), r("libs"), f(s.usage.peakPssMB, 0), f(s.usage.peakPssMB !== undefined ? s.usage.peakPssMB / p.n : undefined, 1),
        `${f(s.medianFps, 1)}/${f(s.minFps, 1)}`, md("mcu_composite_encoder_spawns_total"), md('mcu_composite_frames_skipped_total{reason="encoder_busy"}'),
      ]);
    }
    for (const [kind, b] of Object.entries(p.baselines ?? {})) {
      rows.push([String(p.n), ({ libs: "libraries alone", decode: "decode alone" } as Record<string, string>)[kind] ?? "ffmpeg alone", f(b.usage.cores, 3), "-", "-", kind === "decode" ? f(b.usage.cores, 3) : "-", "-", "-", "-", f(b.usage.peakPssMB, 0), f(b.usage.peakPssMB !== undefined ? b.usage.peakPssMB / p.n : undefined, 1), f(b.outputFps, 1), "-", "-"]);
    }
  }
  if (!rows.length) return;
  log("");
  log("The media plane, each design in the same run (ratios against each baseline measured beside it)");
  table(log, ["n", "design", "tree CPU", "node", "encoder children", "tile decoders", "decoders vs decode alone", "vs ffmpeg alone", "vs libraries alone", "PSS MB", "PSS/part.", "fps med/min", "encoder spawns", "encoder busy"], rows);
  log(`"library": VIDEO_ENGINE=library (composite encoders in the server process, FFmpeg's libraries); "ffmpeg": one ffmpeg child per ` +
    `rung. "ffmpeg alone": the bundled ffmpeg program doing the same decode + composite + encode + audio mix; "libraries alone": ` +
    `the server's own FFmpeg libraries and libopus doing it in one process with nothing else (bench/libsAlone.ts); "decode alone": ` +
    `the bundled ffmpeg decoding and scaling the cameras into their tiles, nothing else (against the tile decoder children). "node" is the ` +
    `server process (its in-process encoders included); "encoder children" and "tile decoders" are child processes.`);
}
