// The one place configuration is read from the environment (documented in README's table).
import path from "node:path";
import ffmpegInstaller from "@ffmpeg-installer/ffmpeg";

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface Config {
  port: number;
  host: string;
  /** Composite canvas size and rate. */
  width: number;
  height: number;
  fps: number;
  /** Composite VP8 target bitrate, kbit/s. */
  videoKbps: number;
  /** Per-listener Opus bitrate, kbit/s. */
  audioKbps: number;
  /** Periodic keyframe interval of the composite, seconds (PLIs force extra ones). */
  keyframeIntervalS: number;
  /** Minimum spacing of forced composite keyframes, ms. */
  keyframeMinIntervalMs: number;
  /** A tile whose input sent nothing for this long shows the placeholder, ms. */
  stallTimeoutMs: number;
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
  logLevel: LogLevel;
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

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const [width, height] = size(env);
  const logLevel = (env.LOG_LEVEL || "info") as LogLevel;
  if (!["debug", "info", "warn", "error"].includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be debug|info|warn|error, got "${logLevel}"`);
  }
  if (env.TURN_URLS && !env.TURN_SECRET) throw new ConfigError("TURN_URLS needs TURN_SECRET (coturn's static-auth-secret)");
  return {
    port: int(env, "PORT", 8080, 0, 65535),
    host: env.HOST || "0.0.0.0",
    width,
    height,
    fps: int(env, "OUTPUT_FPS", 30, 1, 60),
    // Default: 1.5 Mbit/s at 720p, scaled by pixel count^0.75 (bits per pixel rise as pictures shrink).
    videoKbps: int(env, "VIDEO_KBPS", Math.round(1500 * ((width * height) / (1280 * 720)) ** 0.75), 50, 20_000),
    audioKbps: int(env, "AUDIO_KBPS", 32, 6, 256),
    keyframeIntervalS: int(env, "KEYFRAME_INTERVAL_S", 10, 1, 600),
    keyframeMinIntervalMs: int(env, "KEYFRAME_MIN_INTERVAL_MS", 500, 0, 60_000),
    stallTimeoutMs: int(env, "STALL_TIMEOUT_MS", 1500, 100, 60_000),
    rtcPortRange: portRange(env),
    announcedIp: env.ANNOUNCED_IP || undefined,
    iceExtraHosts: (env.ICE_EXTRA_HOSTS || "").split(",").map((h) => h.trim()).filter(Boolean),
    iceServers: iceServers(env),
    stunUrls: urlList(env, "STUN_URLS", ["stun", "stuns"]),
    turnUrls: urlList(env, "TURN_URLS", ["turn", "turns"]),
    turnSecret: env.TURN_SECRET || undefined,
    turnTtlS: int(env, "TURN_TTL_S", 86_400, 60, 30 * 86_400),
    ffmpegPath: env.FFMPEG_PATH || ffmpegInstaller.path,
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
  };
}
