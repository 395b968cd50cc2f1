// The narrow channel between the main process (HTTP, signaling transports, placement) and a media
// worker (rooms: werift peers, compositor, mixer, encoders). It carries signaling and a few API
// calls, never media: a few messages a second per participant, as JSON over the fork's IPC pipe.
import type { Config } from "../config.ts";
import type { CloseReason } from "../Participant.ts";
import type { ServerMessage } from "../protocol.ts";
import type { RecordingMeta } from "../recordings/RecordingStore.ts";

/** What main asks of a worker, all in one call shape. */
export type WorkerCall =
  /** A REST request about rooms (roomsApi.ts's routes), body already parsed. */
  | { op: "rooms"; method: string; path: string; body: unknown }
  /** Ends the seats of a revoked token (and remembers it for later joins). */
  | { op: "revoke"; tokenId: string }
  /** This worker's metrics, as prom-client's JSON (main sums every worker's with its own). */
  | { op: "metrics" }
  /** Recording of a room held by this worker (the page's button and /api/rooms/:room/recording). */
  | { op: "record"; action: "start" | "stop" | "current"; room: string }
  /** Stops every recording here, as a shutdown does (their files closed, left for post-processing). */
  | { op: "closeRecordings" }
  /** Test mode only (MEDIA_WORKER_TEST_HOOKS=1): spin this worker's loop for `ms` (a saturated worker). */
  | { op: "spin"; ms: number };

export type MainToWorker =
  /** `workers`: how many there are (each is 1 / workers of the server, for its overload policy). */
  | { t: "init"; index: number; workers: number; config: Config; node?: RecordingMeta["node"] }
  /** The whole server's CPU, in cores, summed by main every LOAD_SAMPLE_MS (the overload budget is the server's). */
  | { t: "serverLoad"; cpuCores: number }
  /** The answer to a worker's `ask`. */
  | { t: "answer"; id: number; refused?: string }
  | { t: "open"; sid: number; address: string }
  /** `join`: the worker answers with `joinDone` once it has acted on it (main's reservation ends then). */
  | { t: "message"; sid: number; raw: string; join?: boolean }
  | { t: "close"; sid: number; reason: CloseReason }
  | { t: "call"; id: number; call: WorkerCall };

/** A worker's load, every LOAD_SAMPLE_MS: what placement, /metrics and the heartbeat read. */
export interface WorkerLoad {
  /** CPU of the worker's tree (its process, its spawn host, its ffmpeg children), in cores. */
  cpuCores: number;
  loopLagMs: number;
  tickLateMs: number;
  /** Overload level of its policy (1 and up: it takes no new participant). */
  level: number;
  rooms: string[];
  participants: number;
  outputs: number;
}

export type WorkerToMain =
  | { t: "ready"; pid: number }
  | { t: "send"; sid: number; msg: ServerMessage }
  /** The session took a seat (participant id) or lost it (null). */
  | { t: "seat"; sid: number; participant: string | null; room: string | null }
  | { t: "joinDone"; sid: number }
  /** A recording slot for `room` (MAX_RECORDINGS holds server-wide): main answers with `answer`. */
  | { t: "ask"; id: number; room: string }
  /** The recording of `room` started (its id) or ended (null: the slot is free). */
  | { t: "recording"; room: string; id: string | null }
  /** A recording waits for post-processing: main queues it. */
  | { t: "enqueue"; recording: string }
  | { t: "load"; load: WorkerLoad }
  | { t: "reply"; id: number; ok: true; value: unknown }
  | { t: "reply"; id: number; ok: false; status: number; code: string; message: string };

/** A call refused by the worker: carries the HTTP status the API answers with. */
export class WorkerCallError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The config as it crosses the channel: functions (trustedProxies) stay in main, where transports are. */
export function portableConfig(config: Config): Config {
  return JSON.parse(JSON.stringify(config, (_k, v: unknown) => (typeof v === "function" ? undefined : v))) as Config;
}
