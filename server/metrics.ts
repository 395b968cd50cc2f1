// Process-wide counters and gauges, exposed at GET /metrics in Prometheus text format.
type Labels = Record<string, string>;

class Metric {
  readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: "counter" | "gauge",
  ) {}
  private key(labels?: Labels): string {
    if (!labels) return "";
    const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, "_")}"`);
    return `{${parts.join(",")}}`;
  }
  inc(labels?: Labels, by = 1): void {
    const k = this.key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  set(value: number, labels?: Labels): void {
    this.values.set(this.key(labels), value);
  }
  get(labels?: Labels): number {
    return this.values.get(this.key(labels)) ?? 0;
  }
}

const registry: Metric[] = [];
function metric(name: string, help: string, type: "counter" | "gauge"): Metric {
  const m = new Metric(name, help, type);
  registry.push(m);
  return m;
}

export const metrics = {
  rooms: metric("mcu_rooms", "Rooms with at least one participant", "gauge"),
  participants: metric("mcu_participants", "Participants connected", "gauge"),
  signalingErrors: metric("mcu_signaling_errors_total", "Signaling messages rejected, by code", "counter"),
  ffmpegExits: metric("mcu_ffmpeg_exits_total", "ffmpeg children that exited unexpectedly, by role", "counter"),
  ffmpegRestarts: metric("mcu_ffmpeg_restarts_total", "ffmpeg children replaced, by role", "counter"),
  compositeFrames: metric("mcu_composite_frames_total", "Composite frames handed to the encoder", "counter"),
  compositeLateTicks: metric("mcu_composite_late_ticks_total", "Compositor ticks skipped because the clock fell behind", "counter"),
  keyframesForced: metric("mcu_keyframes_forced_total", "Composite keyframes forced by receivers' PLI/FIR", "counter"),
  keyframeRequestsLimited: metric("mcu_keyframe_requests_limited_total", "Receiver PLIs folded into a pending keyframe", "counter"),
  plisSent: metric("mcu_pli_sent_total", "PLIs sent to participants, by reason", "counter"),
  videoFramesDropped: metric("mcu_input_frames_dropped_total", "Incoming video frames dropped (loss, no keyframe yet)", "counter"),
  audioUnderruns: metric("mcu_audio_underruns_total", "20 ms audio ticks with no input audio buffered", "counter"),
  recordingsActive: metric("mcu_recordings_active", "Rooms being recorded", "gauge"),
  recorderDrops: metric("mcu_recorder_dropped_writes_total", "Media a backed-up recorder pipe could not take", "counter"),
  recordingJobs: metric("mcu_recording_jobs_total", "Post-processing jobs finished, by result (done, retry, failed)", "counter"),
};

export function renderMetrics(): string {
  const out: string[] = [];
  for (const m of registry) {
    out.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.type}`);
    if (m.values.size === 0) out.push(`${m.name} 0`);
    for (const [k, v] of m.values) out.push(`${m.name}${k} ${v}`);
  }
  return out.join("\n") + "\n";
}
