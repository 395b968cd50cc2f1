// The one place configuration is read from the environment (documented in README's table).
import os from "node:os";
import path from "node:path";
import ffmpegInstaller from "@ffmpeg-installer/ffmpeg";
import { VP8_CPU_USED } from "../mixer/CompositeEncoder.ts";
import type { OpusEngine } from "../mixer/AudioMixer.ts";
import type { VideoEngine } from "../mixer/CompositeEncoder.ts";
import type { DecodeLimits } from "../mixer/decodeBudget.ts";
import { LAYOUT_KINDS, type LayoutKind } from "../mixer/layout.ts";
import type { LogLevel } from "../telemetry/log.ts";
import { parseProxies } from "./admission.ts";

export type { LogLevel };

/** One rung of the composite ladder: an encoded size and its bitrate. */
export interface Rung {
  width: number;
  height: number;
  kbps: number;
}

export interface Config {
  port: number;
  host: string;
  /** Composite canvas size and rate. */
  width: number;
  height: number;
  fps: number;
  /** Composite target bitrate, kbit/s (each codec's encoder). */
  videoKbps: number;
  /** The composite's ladder: rung 0 is the canvas; lower rungs scale the composed canvas down. */
  outputRungs: Rung[];
  /** Video codecs offered to browsers, in the server's order of preference; each receiver gets the first its browser takes. */
  videoCodecs: ("vp8" | "h264")[];
  /** Per-listener Opus bitrate, kbit/s. */
  audioKbps: number;
  /** libvpx -cpu-used of the VP8 composite: negative = that fixed speed, positive = adaptive. */
  vp8CpuUsed: number;
  /** Periodic keyframe interval of the composite, seconds (PLIs force extra ones). */
  keyframeIntervalS: number;
  /** Minimum spacing of forced composite keyframes, ms. */
  keyframeMinIntervalMs: number;
  /** A tile whose input sent nothing for this long shows the placeholder, ms. */
  stallTimeoutMs: number;
  /** Name labels on the tiles of the composite (and so of the recording). */
  labels: boolean;
  /** A new room's layout (REST or a moderator changes it per room). */
  layout: LayoutKind;
  /** The speaker layout's large tile goes to someone who has been the loudest speaker this long, ms. */
  speakerHoldMs: number;
  /** ...and changes at most this often, ms. */
  speakerMinSwitchMs: number;
  /** UDP port range for ICE, or undefined for any port. */
  rtcPortRange: [number, number] | undefined;
  /** Extra local addresses werift gathers host candidates on (e.g. 127.0.0.1, normally skipped). */
  iceExtraHosts: string[];
  /** Public IP announced as an extra host candidate (behind NAT/containers). */
  announcedIp: string | undefined;
  /** ICE servers handed to clients in `joined` as given (JSON array). */
  iceServers: { urls: string | string[]; username?: string; credential?: string }[];
  /** STUN URLs handed to clients. */
  stunUrls: string[];
  /** TURN URLs handed to clients with per-participant credentials (needs turnSecret). */
  turnUrls: string[];
  /** coturn `static-auth-secret` for TURN REST credentials. */
  turnSecret: string | undefined;
  /** Lifetime of minted TURN credentials, seconds. */
  turnTtlS: number;
  ffmpegPath: string;
  /** How ffmpeg children start: through the spawn host (a fork of a small process), or forked from the server. */
  ffmpegSpawn: "host" | "direct";
  /** Where the rooms' Opus decoders and encoders run: libopus in the server process, or one ffmpeg child each. */
  opusEngine: OpusEngine;
  /** Where the composite is encoded: FFmpeg's libraries in the server process, or one ffmpeg child per rung. */
  videoEngine: VideoEngine;
  /** How the composite and mixes go out: the server's lean send path (server/leanSender.ts), or werift's RTCRtpSender.sendRtp. */
  rtpSender: "lean" | "werift";
  logLevel: LogLevel;
  /** Media workers (processes) the rooms run in: 0 keeps them in the server's own process; "auto" is one per core. */
  mediaWorkers: number | "auto";
  /** Largest accepted signaling message, bytes. */
  maxMessageBytes: number;
  /** Most participants in one room. */
  maxParticipants: number;
  /** Folder recordings are written to (one sub-folder each). */
  recordingsDir: string;
  /** Redis for the post-processing queue (BullMQ); unset = embedded in-process queue. */
  redisUrl: string | undefined;
  /** Key prefix of the queue in Redis (several deployments can share one Redis). */
  queuePrefix: string;
  /** With Redis: also run a post-processing worker inside the server (off when `npm run worker` runs elsewhere). */
  postprocessWorker: boolean;
  /** When set, every /api request needs `Authorization: Bearer <apiToken>`. */
  apiToken: string | undefined;
  /** Participants may start/stop recording from the page (the REST API always can). */
  clientRecording: boolean;
  /** Opus bitrate of the finished recording's audio (the live file holds PCM), kbit/s. */
  recordingAudioKbps: number;
  /** Post-processing also makes an MP4 (H.264 + AAC). */
  recordingMp4: boolean;
  /** Post-processing tries per recording, first retry delay (doubling), and the worker lock (dead-worker detection), ms. */
  jobAttempts: number;
  jobBackoffMs: number;
  jobLockMs: number;

  // --- Limits that hold before any authentication (one anonymous client must not take the server down) ---
  /** Rooms at once, server-wide. */
  maxRooms: number;
  /** Participants at once, server-wide. */
  maxParticipantsTotal: number;
  /** Open signaling connections (WebSockets + long-poll sessions) per client address. */
  maxConnectionsPerIp: number;
  /** Joined participants per client address. */
  maxJoinsPerIp: number;
  /** Distinct rooms one client address may be in at once (each room with media runs an encoder). */
  maxRoomsPerIp: number;
  /** Offers parsed and answered at once, server-wide (more wait in a short queue, beyond it `busy`). */
  maxConcurrentOffers: number;
  /** Offer SDP limits, checked before werift sees it. */
  maxSdpMediaSections: number;
  maxSdpLines: number;
  /** A joined participant that has not offered within this time is dropped (its seat freed), ms. */
  joinOfferTimeoutMs: number;
  /** Remote ICE candidates taken from one participant (before and after its offer); more are ignored and counted. */
  maxRemoteCandidates: number;
  /** What one participant's camera may cost to decode (mixer/decodeBudget.ts). */
  decode: DecodeLimits;
  /** Pixels per second decoded for all cameras from one address, and for the whole server. */
  decodeAddressPixelsPerSecond: number;
  decodeServerPixelsPerSecond: number;
  /** How many participants' budgets all cameras from one address share (decode pixels, media bandwidth). */
  decodeAddressShare: number;
  /** Media taken in from one participant (kbit/s), before werift decrypts it; over it, datagrams are dropped. */
  ingressKbps: number;
  /** RTCP packets per second taken from one participant's peer, before werift decrypts them. */
  rtcpPerSecond: number;
  /** Retransmissions per second one receiver's NACKs may ask of the server (per stream). */
  retransmitPerSecond: number;
  /** Largest RTP/RTCP datagram taken from a participant, and its largest RTP header-extension block (bytes). */
  rtpMaxPacketBytes: number;
  /** DataChannel (chat) bandwidth taken from one participant (kbit/s), before werift decrypts it. */
  dataChannelKbps: number;
  rtpMaxExtensionBytes: number;
  /** STUN binding answers per second to one source address, per ICE socket (twice that at once). */
  stunPerSecond: number;
  /** Outgoing bytes a WebSocket may have buffered before the server closes it (a client that does not read). */
  maxBufferedBytes: number;
  /** Out-of-order long-poll messages held per session (ahead of the next expected seq). */
  longPollWindow: number;
  /** A WebSocket is pinged this often and dropped when it has not echoed the last ping, ms. */
  wsPingMs: number;

  // --- Who may do what ---
  /** HS256 secret for room tokens (JWT); when set, `join` needs a token. Unset = open rooms (local use). */
  authSecret: string | undefined;
  /** Lifetime of tokens minted by the API / `npm run token`, seconds. */
  tokenTtlS: number;
  /** /api and /metrics answer anonymous requests from non-loopback addresses (off: only with API_TOKEN, or from loopback). */
  publicApi: boolean;
  /** Reverse proxies whose Forwarded / X-Forwarded-For headers name the client (addresses, IPv4 ranges). */
  trustedProxies: (address: string) => boolean;

  // --- Several media nodes (Redis registry; on when REDIS_URL and NODE_URL are both set) ---
  /** How clients and the other nodes reach this node (its signaling and API), e.g. http://10.0.0.5:8080. */
  nodeUrl: string | undefined;
  /** Encodes a second of a composite with no live camera and nothing redrawn (OUTPUT_FPS or more: every tick). */
  stillFps: number;
  /** The overload policy's CPU budget: the process tree's CPU as a fraction of all cores (server/overload.ts). */
  overloadCpu: number;
  /** This node takes no new rooms while its machine's CPU (0..1 of all cores) is above this. */
  nodeMaxCpu: number;
  /** ...or while it holds this many participants. */
  nodeMaxParticipants: number;
  /** Heartbeat period and the registration's lifetime (a dead node is forgotten after it), ms. */
  nodeHeartbeatMs: number;
  nodeTtlMs: number;
  /** Key prefix of the registry in Redis. */
  clusterPrefix: string;

  // --- Recording quotas ---
  /** Recordings running at once, server-wide. */
  maxRecordings: number;
  /** Free disk space (MB) below which no recording starts and running ones are stopped (`endedBy: "disk_low"`). */
  recordingsMinFreeMb: number;
}

export class ConfigError extends Error {}

function int(env: NodeJS.ProcessEnv, name: string, def: number, min = 1, max = 1_000_000): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name} must be an integer in [${min}, ${max}], got "${raw}"`);
  }
  return n;
}

function size(env: NodeJS.ProcessEnv): [number, number] {
  const raw = env.OUTPUT_SIZE || "1280x720";
  const m = /^(\d+)x(\d+)$/.exec(raw);
  if (!m) throw new ConfigError(`OUTPUT_SIZE must look like 1280x720, got "${raw}"`);
  const w = Number(m[1]);
  const h = Number(m[2]);
  // yuv420p needs even dimensions.
  if (w < 64 || h < 64 || w % 2 || h % 2 || w > 3840 || h > 2160) {
    throw new ConfigError(`OUTPUT_SIZE must be even and between 64x64 and 3840x2160, got "${raw}"`);
  }
  return [w, h];
}

/** DECODE_*: a camera a real device never exceeds (1920x1080 at 30 fps, 4 Mbit/s), an address twice that, the server a share per core. */
function decodeBudget(env: NodeJS.ProcessEnv): Pick<Config, "decode" | "decodeAddressPixelsPerSecond" | "decodeServerPixelsPerSecond" | "decodeAddressShare" | "ingressKbps"> {
  const raw = env.DECODE_MAX_FRAME || "1920x1080";
  const m = /^(\d+)x(\d+)$/.exec(raw);
  if (!m || Number(m[1]) < 16 || Number(m[2]) < 16 || Number(m[1]) * Number(m[2]) > 8192 * 4320) {
    throw new ConfigError(`DECODE_MAX_FRAME must look like 1920x1080 (at most 8192x4320), got "${raw}"`);
  }
  const maxFramePixels = Number(m[1]) * Number(m[2]);
  const pixelsPerSecond = maxFramePixels * int(env, "DECODE_MAX_FPS", 30, 1, 240);
  const share = int(env, "DECODE_ADDRESS_SHARE", 2, 1, 1000);
  const kbps = int(env, "DECODE_MAX_KBPS", 4000, 100, 100_000);
  return {
    decodeAddressShare: share,
    // Twice what is decoded: a camera at its budget, its retransmissions, the microphone.
    ingressKbps: int(env, "INGRESS_MAX_KBPS", 2 * kbps, 200, 1_000_000),
    decode: {
      maxFramePixels,
      pixelsPerSecond,
      bitsPerSecond: kbps * 1000,
      oversizeIntervalMs: int(env, "DECODE_OVERSIZE_INTERVAL_MS", 5000, 500, 600_000),
      resizeIntervalMs: int(env, "DECODE_RESIZE_INTERVAL_MS", 1000, 0, 600_000),
    },
    decodeAddressPixelsPerSecond: pixelsPerSecond * share,
    decodeServerPixelsPerSecond: int(env, "DECODE_SERVER_MPX_PER_CORE", 60, 1, 100_000) * 1e6 * os.availableParallelism(),
  };
}

function trustedProxies(env: NodeJS.ProcessEnv): (address: string) => boolean {
  const list = (env.TRUSTED_PROXIES || "").split(",").map((p) => p.trim()).filter(Boolean);
  try {
    return parseProxies(list);
  } catch (err) {
    throw new ConfigError(`TRUSTED_PROXIES must list addresses or IPv4 ranges (10.0.0.0/8), comma-separated: ${(err as Error).message}`);
  }
}

function portRange(env: NodeJS.ProcessEnv): [number, number] | undefined {
  const raw = env.RTC_PORT_RANGE;
  if (!raw) return undefined;
  const m = /^(\d+)-(\d+)$/.exec(raw);
  const lo = Number(m?.[1]);
  const hi = Number(m?.[2]);
  if (!m || lo < 1024 || hi > 65535 || lo >= hi) {
    throw new ConfigError(`RTC_PORT_RANGE must look like 40000-40999 (min < max), got "${raw}"`);
  }
  return [lo, hi];
}

function layoutKind(env: NodeJS.ProcessEnv): LayoutKind {
  const raw = (env.LAYOUT || "grid").toLowerCase();
  if (raw === "pinned" || !LAYOUT_KINDS.includes(raw as LayoutKind)) throw new ConfigError(`LAYOUT must be grid or speaker, got "${env.LAYOUT}"`);
  return raw as LayoutKind;
}

function ffmpegSpawn(env: NodeJS.ProcessEnv): Config["ffmpegSpawn"] {
  const raw = (env.FFMPEG_SPAWN || "host").toLowerCase();
  if (raw !== "host" && raw !== "direct") throw new ConfigError(`FFMPEG_SPAWN must be host or direct, got "${env.FFMPEG_SPAWN}"`);
  return raw;
}

function opusEngine(env: NodeJS.ProcessEnv): OpusEngine {
  const raw = (env.OPUS_ENGINE || "inprocess").toLowerCase();
  if (raw !== "inprocess" && raw !== "ffmpeg") throw new ConfigError(`OPUS_ENGINE must be inprocess or ffmpeg, got "${env.OPUS_ENGINE}"`);
  return raw;
}

function mediaWorkers(env: NodeJS.ProcessEnv): number | "auto" {
  const raw = (env.MEDIA_WORKERS || "auto").trim().toLowerCase();
  if (raw === "auto") return "auto";
  if (!/^\d+$/.test(raw) || Number(raw) > 256) throw new ConfigError(`MEDIA_WORKERS must be auto or a number of workers 0-256 (0: rooms in the server's own process), got "${env.MEDIA_WORKERS}"`);
  return Number(raw);
}

function videoEngine(env: NodeJS.ProcessEnv): VideoEngine {
  const raw = (env.VIDEO_ENGINE || "library").toLowerCase();
  if (raw !== "library" && raw !== "ffmpeg") throw new ConfigError(`VIDEO_ENGINE must be library or ffmpeg, got "${env.VIDEO_ENGINE}"`);
  return raw;
}

function rtpSender(env: NodeJS.ProcessEnv): "lean" | "werift" {
  const raw = (env.RTP_SENDER || "lean").toLowerCase();
  if (raw !== "lean" && raw !== "werift") throw new ConfigError(`RTP_SENDER must be lean or werift, got "${env.RTP_SENDER}"`);
  return raw;
}

function bool(env: NodeJS.ProcessEnv, name: string, def: boolean): boolean {
  const raw = (env[name] ?? "").toLowerCase();
  if (raw === "") return def;
  if (["1", "on", "true", "yes"].includes(raw)) return true;
  if (["0", "off", "false", "no"].includes(raw)) return false;
  throw new ConfigError(`${name} must be on or off, got "${env[name]}"`);
}

function redisUrl(env: NodeJS.ProcessEnv): string | undefined {
  const raw = env.REDIS_URL;
  if (!raw) return undefined;
  if (!/^rediss?:\/\//.test(raw)) throw new ConfigError(`REDIS_URL must look like redis://host:6379, got "${raw}"`);
  return raw;
}

function nodeUrl(env: NodeJS.ProcessEnv): string | undefined {
  const raw = env.NODE_URL;
  if (!raw) return undefined;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(`NODE_URL must be this node's http(s) URL, e.g. http://10.0.0.5:8080; got "${raw}"`);
  }
  if (!/^https?:$/.test(u.protocol) || u.pathname !== "/" || u.search) throw new ConfigError(`NODE_URL must be an http(s) origin, e.g. http://10.0.0.5:8080; got "${raw}"`);
  return u.origin;
}

function fraction(env: NodeJS.ProcessEnv, name: string, def: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || n > 1) throw new ConfigError(`${name} must be a fraction in (0, 1], got "${raw}"`);
  return n;
}

function urlList(env: NodeJS.ProcessEnv, name: string, schemes: string[]): string[] {
  const raw = env[name];
  if (!raw) return [];
  const urls = raw.split(",").map((u) => u.trim()).filter(Boolean);
  for (const u of urls) {
    if (!schemes.some((s) => u.startsWith(`${s}:`))) throw new ConfigError(`${name}: "${u}" must start with ${schemes.map((s) => s + ":").join(" or ")}`);
  }
  return urls;
}

function iceServers(env: NodeJS.ProcessEnv): Config["iceServers"] {
  const raw = env.ICE_SERVERS;
  if (!raw) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError(`ICE_SERVERS must be a JSON array, got "${raw}"`);
  }
  const ok =
    Array.isArray(parsed) &&
    parsed.every((s) => s && (typeof s.urls === "string" || Array.isArray(s.urls)));
  if (!ok) throw new ConfigError(`ICE_SERVERS must be a JSON array of {urls, username?, credential?}`);
  return parsed as Config["iceServers"];
}

/** Default: 1.5 Mbit/s at 720p, scaled by pixel count^0.75 (bits per pixel rise as pictures shrink). */
const kbpsFor = (w: number, h: number) => Math.round(1500 * ((w * h) / (1280 * 720)) ** 0.75);

function videoKbps(env: NodeJS.ProcessEnv, width: number, height: number): number {
  return int(env, "VIDEO_KBPS", kbpsFor(width, height), 50, 20_000);
}

/** OUTPUT_RUNGS=1280x720:1500,640x360:500; default: the canvas, half and quarter size. */
function rungs(env: NodeJS.ProcessEnv, width: number, height: number, kbps: number): Rung[] {
  const even = (n: number) => Math.max(64, Math.round(n / 2) * 2);
  const raw = env.OUTPUT_RUNGS;
  if (!raw) {
    return [{ width, height, kbps }, ...[2, 4].map((d) => ({ width: even(width / d), height: even(height / d), kbps: kbpsFor(even(width / d), even(height / d)) }))];
  }
  const list = raw.split(",").map((r) => {
    const m = /^\s*(\d+)x(\d+):(\d+)\s*$/.exec(r);
    const [w, h, k] = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, 0, 0];
    if (!m || w % 2 || h % 2 || w < 64 || h < 64 || w > width || h > height || k < 20 || k > 20_000) {
      throw new ConfigError(`OUTPUT_RUNGS must look like ${width}x${height}:1500,640x360:500 (even sizes, at most OUTPUT_SIZE, largest first); got "${raw}"`);
    }
    return { width: w, height: h, kbps: k };
  });
  if (list[0]!.width !== width || list[0]!.height !== height || list.some((r, i) => i > 0 && r.width * r.height >= list[i - 1]!.width * list[i - 1]!.height)) {
    throw new ConfigError(`OUTPUT_RUNGS must start at OUTPUT_SIZE (${width}x${height}) and get smaller; got "${raw}"`);
  }
  return list;
}

function codecList(env: NodeJS.ProcessEnv): ("vp8" | "h264")[] {
  const raw = env.VIDEO_CODECS || "vp8,h264";
  const list = raw.split(",").map((c) => c.trim().toLowerCase()).filter(Boolean);
  if (!list.length || list.some((c) => c !== "vp8" && c !== "h264") || new Set(list).size !== list.length) {
    throw new ConfigError(`VIDEO_CODECS must list vp8 and/or h264 once each, e.g. h264,vp8; got "${raw}"`);
  }
  return list as ("vp8" | "h264")[];
}

function secret(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const raw = env[name];
  if (!raw) return undefined;
  // HS256 with a guessable key is no protection: ask for at least 32 characters.
  if (raw.length < 32) throw new ConfigError(`${name} must be at least 32 characters (e.g. openssl rand -hex 32)`);
  return raw;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const [width, height] = size(env);
  const logLevel = (env.LOG_LEVEL || "info") as LogLevel;
  if (!["debug", "info", "warn", "error"].includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be debug|info|warn|error, got "${logLevel}"`);
  }
  if (env.TURN_URLS && !env.TURN_SECRET) throw new ConfigError("TURN_URLS needs TURN_SECRET (coturn's static-auth-secret)");
  if (env.NODE_URL && !env.REDIS_URL) throw new ConfigError("NODE_URL needs REDIS_URL: the nodes find each other in Redis");
  const nodeHeartbeatMs = int(env, "NODE_HEARTBEAT_MS", 1000, 50, 60_000);
  const nodeTtlMs = int(env, "NODE_TTL_MS", 3000, 150, 600_000);
  if (nodeTtlMs < 2 * nodeHeartbeatMs) throw new ConfigError(`NODE_TTL_MS (${nodeTtlMs}) must be at least twice NODE_HEARTBEAT_MS (${nodeHeartbeatMs})`);
  const maxParticipantsTotal = int(env, "MAX_PARTICIPANTS_TOTAL", 64, 1, 100_000);
  return {
    port: int(env, "PORT", 8080, 0, 65535),
    host: env.HOST || "0.0.0.0",
    width,
    height,
    fps: int(env, "OUTPUT_FPS", 30, 1, 60),
    // Default: 1.5 Mbit/s at 720p, scaled by pixel count^0.75 (bits per pixel rise as pictures shrink).
    videoKbps: videoKbps(env, width, height),
    audioKbps: int(env, "AUDIO_KBPS", 32, 6, 256),
    vp8CpuUsed: int(env, "VP8_CPU_USED", VP8_CPU_USED, -16, 16),
    videoCodecs: codecList(env),
    outputRungs: rungs(env, width, height, videoKbps(env, width, height)),
    keyframeIntervalS: int(env, "KEYFRAME_INTERVAL_S", 10, 1, 600),
    keyframeMinIntervalMs: int(env, "KEYFRAME_MIN_INTERVAL_MS", 500, 0, 60_000),
    stallTimeoutMs: int(env, "STALL_TIMEOUT_MS", 1500, 100, 60_000),
    labels: bool(env, "LABELS", true),
    layout: layoutKind(env),
    speakerHoldMs: int(env, "SPEAKER_HOLD_MS", 1500, 0, 60_000),
    speakerMinSwitchMs: int(env, "SPEAKER_MIN_SWITCH_MS", 3000, 0, 600_000),
    rtcPortRange: portRange(env),
    announcedIp: env.ANNOUNCED_IP || undefined,
    iceExtraHosts: (env.ICE_EXTRA_HOSTS || "").split(",").map((h) => h.trim()).filter(Boolean),
    iceServers: iceServers(env),
    stunUrls: urlList(env, "STUN_URLS", ["stun", "stuns"]),
    turnUrls: urlList(env, "TURN_URLS", ["turn", "turns"]),
    turnSecret: env.TURN_SECRET || undefined,
    turnTtlS: int(env, "TURN_TTL_S", 86_400, 60, 30 * 86_400),
    ffmpegPath: env.FFMPEG_PATH || ffmpegInstaller.path,
    ffmpegSpawn: ffmpegSpawn(env),
    opusEngine: opusEngine(env),
    videoEngine: videoEngine(env),
    rtpSender: rtpSender(env),
    mediaWorkers: mediaWorkers(env),
    logLevel,
    maxMessageBytes: int(env, "MAX_MESSAGE_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024),
    maxParticipants: int(env, "MAX_PARTICIPANTS", 16, 1, 100),
    recordingsDir: path.resolve(env.RECORDINGS_DIR || "recordings"),
    redisUrl: redisUrl(env),
    queuePrefix: env.QUEUE_PREFIX || "mixroom",
    postprocessWorker: bool(env, "POSTPROCESS_WORKER", true),
    apiToken: env.API_TOKEN || undefined,
    clientRecording: bool(env, "CLIENT_RECORDING", true),
    recordingAudioKbps: int(env, "RECORDING_AUDIO_KBPS", 64, 16, 256),
    recordingMp4: bool(env, "RECORDING_MP4", true),
    jobAttempts: int(env, "JOB_ATTEMPTS", 5, 1, 100),
    jobBackoffMs: int(env, "JOB_BACKOFF_MS", 2000, 10, 3_600_000),
    jobLockMs: int(env, "JOB_LOCK_MS", 30_000, 1000, 3_600_000),
    maxRooms: int(env, "MAX_ROOMS", 32, 1, 10_000),
    maxParticipantsTotal,
    maxConnectionsPerIp: int(env, "MAX_CONNECTIONS_PER_IP", 32, 1, 100_000),
    maxJoinsPerIp: int(env, "MAX_JOINS_PER_IP", 24, 1, 100_000),
    maxRoomsPerIp: int(env, "MAX_ROOMS_PER_IP", 4, 1, 10_000),
    maxConcurrentOffers: int(env, "MAX_CONCURRENT_OFFERS", 2, 1, 64),
    maxSdpMediaSections: int(env, "MAX_SDP_MEDIA_SECTIONS", 8, 1, 64),
    maxSdpLines: int(env, "MAX_SDP_LINES", 1000, 50, 100_000),
    joinOfferTimeoutMs: int(env, "JOIN_OFFER_TIMEOUT_MS", 20_000, 1000, 600_000),
    maxRemoteCandidates: int(env, "MAX_REMOTE_CANDIDATES", 32, 1, 1000),
    stunPerSecond: int(env, "STUN_PER_SECOND", 50, 1, 10_000),
    retransmitPerSecond: int(env, "RETRANSMIT_MAX_PER_SECOND", 100, 1, 100_000),
    rtcpPerSecond: int(env, "RTCP_MAX_PER_SECOND", 200, 10, 100_000),
    rtpMaxPacketBytes: int(env, "RTP_MAX_PACKET_BYTES", 1500, 1280, 65_535),
    dataChannelKbps: int(env, "DATACHANNEL_MAX_KBPS", 128, 16, 1_000_000),
    rtpMaxExtensionBytes: int(env, "RTP_MAX_HEADER_EXTENSION_BYTES", 256, 16, 65_535),
    ...decodeBudget(env),
    maxBufferedBytes: int(env, "MAX_BUFFERED_BYTES", 1024 * 1024, 64 * 1024, 1024 * 1024 * 1024),
    longPollWindow: int(env, "LONGPOLL_WINDOW", 32, 1, 10_000),
    wsPingMs: int(env, "WS_PING_MS", 15_000, 100, 600_000),
    authSecret: secret(env, "AUTH_SECRET"),
    tokenTtlS: int(env, "TOKEN_TTL_S", 3600, 10, 365 * 86_400),
    publicApi: bool(env, "PUBLIC_API", false),
    trustedProxies: trustedProxies(env),
    nodeUrl: nodeUrl(env),
    nodeMaxCpu: fraction(env, "NODE_MAX_CPU", 0.8),
    overloadCpu: fraction(env, "OVERLOAD_CPU", 0.85),
    stillFps: int(env, "STILL_FPS", 1, 1, 120),
    nodeMaxParticipants: int(env, "NODE_MAX_PARTICIPANTS", maxParticipantsTotal, 1, 100_000),
    nodeHeartbeatMs,
    nodeTtlMs,
    clusterPrefix: env.CLUSTER_PREFIX || "mixroom",
    maxRecordings: int(env, "MAX_RECORDINGS", 4, 1, 1000),
    recordingsMinFreeMb: int(env, "RECORDINGS_MIN_FREE_MB", 1024, 0, 100_000_000),
  };
}
