// Process-wide counters, gauges and histograms on prom-client, exposed at GET /metrics (Prometheus
// text, with prom-client's default process metrics: CPU, memory, event-loop lag, GC, handles).
// Shared by mixer/ and server/ (neither depends on the other for it). Each counter/gauge keeps a
// plain copy of its values too, so code and tests can read one at once (`get`).
import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

type Labels = Record<string, string>;

export const registry = new Registry();
collectDefaultMetrics({ register: registry });

const keyOf = (labels?: Labels) => (labels && Object.keys(labels).length ? JSON.stringify(Object.entries(labels).sort()) : "");

/** A counter or gauge: prom-client's, plus a synchronous read of its current values. */
class Metric {
  private readonly values = new Map<string, number>();
  private readonly m: Counter<string> | Gauge<string>;

  constructor(name: string, help: string, type: "counter" | "gauge", labelNames: string[] = [], aggregator?: "max") {
    // Summed over media workers in /metrics, except where a sum means nothing (a level, a delay): the worst.
    const o = { name, help, labelNames, registers: [registry], ...(aggregator ? { aggregator } : {}) };
    this.m = type === "counter" ? new Counter(o) : new Gauge(o);
  }

  inc(labels?: Labels, by = 1): void {
    const k = keyOf(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
    if (keyOf(labels)) this.m.inc(labels!, by);
    else this.m.inc(by);
  }

  set(value: number, labels?: Labels): void {
    this.values.set(keyOf(labels), value);
    const g = this.m as Gauge<string>;
    if (keyOf(labels)) g.set(labels!, value);
    else g.set(value);
  }

  get(labels?: Labels): number {
    return this.values.get(keyOf(labels)) ?? 0;
  }

  /** Forgets every label set (a gauge rebuilt from live state at each scrape). */
  reset(): void {
    this.values.clear();
    this.m.reset();
  }
}

function metric(name: string, help: string, type: "counter" | "gauge", labelNames: string[] = [], aggregator?: "max"): Metric {
  return new Metric(name, help, type, labelNames, aggregator);
}

function histogram(name: string, help: string, buckets: number[]): Histogram<string> {
  return new Histogram({ name, help, buckets, registers: [registry] });
}

export const metrics = {
  rooms: metric("mcu_rooms", "Rooms with at least one participant", "gauge"),
  participants: metric("mcu_participants", "Participants connected", "gauge"),
  dataChannelDropped: metric("mcu_datachannel_dropped_total", "DataChannel (SCTP) input refused, by reason: window (past the receive window advertised), stream (stream number over the bound), out_of_order (too many chunks behind a gap), channel (a channel other than one \"chat\", closed), too_many_channels (the peer's DataChannels stopped)", "counter", ["reason"]),
  tokensRevoked: metric("mcu_tokens_revoked_total", "Room tokens revoked through the API on this node (their holders removed on every node)", "counter"),
  libraryEncoders: metric("mcu_composite_library_encoders", "Composite rung encoders open in the server process (VIDEO_ENGINE=library), all rooms", "gauge"),
  tickErrors: metric("mcu_tick_errors_total", "Clock ticks (video, audio) whose work threw: that tick ended there, the room went on; each one is a bug to report", "counter", ["clock"]),
  encoderListenerErrors: metric("mcu_encoder_listener_errors_total", "Encoded composite frames whose fan-out threw (the frame was lost for its receivers, the encoder went on): each one is a bug to report", "counter"),
  unhandledRejections: metric("mcu_unhandled_rejections_total", "Promises rejected with no handler (logged; the server goes on): each one is a bug to report", "counter"),
  signalingErrors: metric("mcu_signaling_errors_total", "Signaling messages rejected, by code", "counter", ["code"]),
  ffmpegExits: metric("mcu_ffmpeg_exits_total", "ffmpeg children that exited unexpectedly, by role", "counter", ["role"]),
  ffmpegRestarts: metric("mcu_ffmpeg_restarts_total", "ffmpeg children replaced, by role", "counter", ["role"]),
  compositeFrames: metric("mcu_composite_frames_total", "Composite frames handed to the encoder", "counter"),
  compositeLateTicks: metric("mcu_composite_late_ticks_total", "Compositor ticks skipped because the clock fell behind", "counter"),
  keyframesForced: metric("mcu_keyframes_forced_total", "Composite keyframes forced by receivers' PLI/FIR", "counter"),
  keyframeRequestsLimited: metric("mcu_keyframe_requests_limited_total", "Receiver PLIs folded into a pending keyframe", "counter"),
  plisSent: metric("mcu_pli_sent_total", "PLIs sent to participants, by reason", "counter", ["reason"]),
  videoFramesDropped: metric("mcu_input_frames_dropped_total", "Incoming video frames dropped (loss, no keyframe yet)", "counter"),
  audioCodecs: metric("mcu_audio_codecs", "Opus codecs running for rooms' audio, by kind (decoder, encoder) and engine (inprocess, ffmpeg)", "gauge", ["kind", "engine"]),
  audioPacketsDropped: metric("mcu_audio_packets_dropped_total", "Participants' Opus packets not decoded, by reason (undecodable, over_rate: more audio than real time allows)", "counter", ["reason"]),
  audioTicksCaughtUp: metric("mcu_audio_ticks_caught_up_total", "20 ms audio ticks that fired late and were mixed and sent at once after an event-loop stall", "counter"),
  audioTicksSkipped: metric("mcu_audio_ticks_skipped_total", "20 ms audio ticks not mixed at all (a stall of over 1 s): every listener misses that packet", "counter"),
  encoderSpawns: metric("mcu_composite_encoder_spawns_total", "Composite rung encoders started, in process or as children (a rung taken into use, or a failed one replaced); none in a steady room, on a keyframe request or in a running rung", "counter"),
  compositeFramesSkipped: metric("mcu_composite_frames_skipped_total", "Composite frames not encoded, by reason (overload: the frame rate lowered on purpose; still: nothing changed; encoder_busy: an encoder child still behind; encoder_restart: its child died and another is starting)", "counter", ["reason"]),
  audioUnderruns: metric("mcu_audio_underruns_total", "20 ms audio ticks with no input audio buffered", "counter"),
  rungSwitches: metric("mcu_rung_switches_total", "Receivers moved to another rung of the composite ladder, by direction (down, up)", "counter", ["direction"]),
  rungDowns: metric("mcu_rung_downs_total", "Receivers moved down a rung by their link, by what their reports showed (loss, jitter)", "counter", ["reason"]),
  outputSendJitter: metric("mcu_output_send_jitter_ms", "Each output's own send jitter (RFC 3550, as a receiver on a perfect link would report it), refreshed at each scrape", "gauge", ["output"]),
  outputReceivers: metric("mcu_output_receivers", "Receivers per composite output (codec@rung), refreshed at each scrape", "gauge", ["output"]),
  decodeRefused: metric("mcu_decode_frames_refused_total", "Camera frames not decoded because they were over a decode budget, by reason: oversize (bigger than DECODE_MAX_FRAME), resize (a size change within DECODE_RESIZE_INTERVAL_MS of the last), pixels / bits (the participant's rate), address / server (the pool's), reference (an inter frame after a refused one)", "counter", ["reason"]),
  retransmitsRefused: metric("mcu_retransmits_refused_total", "Packets a receiver's NACKs asked to be resent that were not: over its retransmission budget (rate) or already resent twice (repeat), by kind (audio, video)", "counter", ["kind", "reason"]),
  udpDropped: metric("mcu_udp_dropped_total", "Datagrams on ICE sockets dropped before werift parsed them, by reason (not_webrtc, stun_malformed, stun_unknown_username, stun_bad_integrity, stun_rate, stun_unsolicited, dtls_from_stranger, rtp_from_stranger, over_bandwidth, rtcp_rate, rtp_oversize (over RTP_MAX_PACKET_BYTES), rtp_malformed, rtp_extension_size (over RTP_MAX_HEADER_EXTENSION_BYTES), rtp_unknown_ssrc (no receiver for it: SSRC churn), rtp_payload_type (not negotiated), datachannel_bandwidth (over DATACHANNEL_MAX_KBPS), after_select); once a socket is connected to its selected remote the kernel drops strangers' datagrams uncounted here", "counter", ["reason"]),
  rtpSent: metric("mcu_rtp_sent_total", "RTP packets for receivers (composite video, mixed audio), by path: lean (sent by server/leanSender.ts), werift (handed to its RTCRtpSender: RTP_SENDER=werift, or a packet the lean path leaves to it, e.g. the first after a rung switch), not_connected (dropped: that receiver's connection was not up yet or had closed, as werift drops them)", "counter", ["path"]),
  udpShed: metric("mcu_udp_shed_total", "Times an ICE socket not yet connected to its selected pair read more than 20 datagrams from strangers in 100 ms and stopped reading for the rest of it (the kernel dropped what came meanwhile, unread and uncounted here)", "counter"),
  udpSocketsConnected: metric("mcu_udp_sockets_connected_total", "ICE sockets connect()ed to their selected remote: the kernel drops everyone else's datagrams", "counter"),
  udpSocketsClosedIdle: metric("mcu_udp_sockets_closed_idle_total", "ICE sockets closed after their connection selected a pair on another and they carried nothing for 10 s (other interfaces, the other address family)", "counter"),
  iceCandidatesApplied: metric("mcu_ice_candidates_applied_total", "Trickled ICE candidates given to the peer, by when they came (before_offer: kept until the offer was applied)", "counter", ["when"]),
  iceCandidatesSkipped: metric("mcu_ice_candidates_skipped_total", "Trickled ICE candidates not used, by reason (mdns, rejected, too_many)", "counter", ["reason"]),
  overloadLevel: metric("mcu_overload_level", "What the server gives up to its load now: 0 normal, 1 no new rooms or participants (server_busy), 2 composite at 20 fps, 3 at 15 fps (media workers: the highest of theirs)", "gauge", [], "max"),
  overloadSteps: metric("mcu_overload_steps_total", "Changes of the overload level, by direction and the level reached", "counter", ["direction", "to"]),
  loadCpuCores: metric("mcu_load_cpu_cores", "CPU of the server's process tree (itself, spawn host, ffmpeg children) over the last sample, in cores", "gauge"),
  loadLoopLagMs: metric("mcu_load_event_loop_lag_ms", "Event-loop delay, mean over the last sample (media workers: the worst)", "gauge", [], "max"),
  loadTickLateMs: metric("mcu_load_tick_lateness_ms", "How late media ticks fired, 90th percentile over the last sample (media workers: the worst)", "gauge", [], "max"),
  busyRefusals: metric("mcu_busy_refusals_total", "Joins refused because the server is overloaded (server_busy)", "counter"),
  recordingsActive: metric("mcu_recordings_active", "Rooms being recorded", "gauge"),
  recorderDrops: metric("mcu_recorder_dropped_writes_total", "Media a backed-up recorder pipe could not take", "counter"),
  recordingsStoppedDiskLow: metric("mcu_recordings_stopped_disk_low_total", "Recordings stopped because free disk space fell below RECORDINGS_MIN_FREE_MB", "counter"),
  httpErrors: metric("mcu_http_server_errors_total", "HTTP answers with a 5xx status, by status", "counter", ["status"]),
  mediaWorkerUp: metric("mcu_media_worker_up", "Whether each media worker is running and ready (1) or restarting (0)", "gauge", ["worker"]),
  mediaWorkerCpu: metric("mcu_media_worker_cpu_cores", "CPU of each media worker's process tree (its ffmpeg children included), in cores, at its last sample", "gauge", ["worker"]),
  mediaWorkerRooms: metric("mcu_media_worker_rooms", "Rooms held by each media worker", "gauge", ["worker"]),
  mediaWorkerParticipants: metric("mcu_media_worker_participants", "Participants seated in each media worker", "gauge", ["worker"]),
  mediaWorkerLevel: metric("mcu_media_worker_overload_level", "Overload level of each media worker's own policy (1 and up: it takes no one new)", "gauge", ["worker"]),
  mediaWorkerLoopLag: metric("mcu_media_worker_loop_lag_ms", "Mean event-loop delay of each media worker at its last sample, ms", "gauge", ["worker"]),
  mediaWorkerExits: metric("mcu_media_worker_exits_total", "Media workers that ended unasked (their rooms ended; their clients reconnected)", "counter", ["worker"]),
  clusterCommands: metric("mcu_cluster_redis_commands_total", "Redis commands sent by the node registry (heartbeats, placements, lookups)", "counter"),
  clusterJoins: metric("mcu_cluster_joins_total", "Joins by where the room was: local, redirect (sent to its owner), refused", "counter", ["where"]),
  recordingJobs: metric("mcu_recording_jobs_total", "Post-processing jobs finished, by result (done, retry, failed)", "counter", ["result"]),
};

/** Distributions, where a mean would hide what matters. */
export const histograms = {
  /** How late the compositor's clock fired each tick (event-loop stalls show here first). */
  tickLateness: histogram("mcu_composite_tick_lateness_seconds", "How late each compositor tick fired after its deadline", [0.001, 0.005, 0.01, 0.02, 0.033, 0.05, 0.1, 0.2, 0.5, 1]),
  /** From `join` to the peer connection up (ICE + DTLS done). */
  joinTime: histogram("mcu_join_seconds", "From a participant's join to its media connection being up", [0.1, 0.25, 0.5, 1, 2, 5, 10, 20]),
  /** The server's own part of video latency: a composite tick's deadline to its packets handed to the wire. */
  sendDelay: histogram("mcu_output_send_delay_seconds", "From a composite tick's deadline to its encoded frame's packets sent, per output frame", [0.005, 0.01, 0.02, 0.033, 0.05, 0.1, 0.2, 0.5, 1]),
  /** Time between consecutive composite frames handed to an encoder: a freeze is a long one. */
  frameGap: histogram("mcu_composite_frame_gap_seconds", "Time between consecutive composite frames of a room", [0.034, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2]),
};

/** Gauges read from the live state at each scrape (e.g. receivers per output); returns its undo. */
const collectors = new Set<() => void>();
export function addCollector(collect: () => void): () => void {
  collectors.add(collect);
  return () => collectors.delete(collect);
}

export async function renderMetrics(): Promise<string> {
  for (const collect of collectors) collect();
  return registry.metrics();
}

export const metricsContentType = registry.contentType;

/** This process's metrics as prom-client's JSON (a media worker's, for main to sum with its own). */
export async function metricsJson(): Promise<object[]> {
  for (const collect of collectors) collect();
  return registry.getMetricsAsJSON();
}

/** This process's metrics summed with those of other processes (the media workers'), as Prometheus text. */
export async function renderMetricsWith(others: object[][]): Promise<string> {
  if (!others.length) return renderMetrics();
  return AggregatorRegistry.aggregate([await metricsJson(), ...others]).metrics();
}
