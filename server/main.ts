// Entry point: `npm start` runs this; tests and the benchmark call startServer().
import http from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { loadConfig, type Config } from "./config.ts";
import { opusBuild } from "../mixer/opusInProcess.ts";
import { killFfmpegOnExit, setFfmpegSpawning } from "../mixer/FfmpegProcess.ts";
import { loadClient } from "./clientBundle.ts";
import { clusterApi } from "./cluster/api.ts";
import { Cluster, type LocalState } from "./cluster/Cluster.ts";
import { KeyedQuota } from "./admission.ts";
import { apiAuth, createHttpApp } from "./http.ts";
import { longPollSignaling } from "./signaling/longpoll.ts";
import { logger, setLogLevel } from "../telemetry/log.ts";
import { metrics } from "../telemetry/metrics.ts";
import { recordingsApi } from "./recordings/api.ts";
import { Recordings } from "./recordings/Recordings.ts";
import { Rooms } from "./Rooms.ts";
import { roomsApi } from "./roomsApi.ts";
import { tokensApi } from "./tokensApi.ts";
import { attachWebSocketSignaling } from "./signaling/websocket.ts";
import { localSessions } from "./signaling/session.ts";
import { libavVersion } from "../mixer/libav.ts";
import { MediaWorkers, workerCount } from "./media/MediaWorkers.ts";
import { workersApi } from "./media/api.ts";
import { Revocations } from "./revocations.ts";
import { watchRejections } from "../telemetry/rejections.ts";

const log = logger("server");
/** Rooms as main's Recordings sees them when they live in media workers: none here. */
const NO_ROOMS = { get: () => undefined };

/** What clients are told to wait before reconnecting when this server shuts down. */
const RECONNECT_AFTER_MS = 2000;

export interface RunningServer {
  url: string;
  port: number;
  /** This process's rooms (MEDIA_WORKERS=0; with media workers, reading it throws). */
  rooms: Rooms;
  /** The media workers the rooms run in (MEDIA_WORKERS > 0). */
  workers: MediaWorkers | undefined;
  recordings: Recordings;
  config: Config;
  /** The node registry, when this is one of several nodes (REDIS_URL + NODE_URL). */
  cluster: Cluster | undefined;
  /** Drops the signaling WebSocket(s) of a participant as a network failure would (for tests). */
  dropWebSocket(participantId: string): boolean;
  close(): Promise<void>;
}

export async function startServer(overrides: Partial<Config> = {}): Promise<RunningServer> {
  const config = { ...loadConfig(), ...overrides };
  setLogLevel(config.logLevel);
  killFfmpegOnExit();
  watchRejections();
  setFfmpegSpawning(config.ffmpegSpawn);
  const { redisUrl, nodeUrl } = config;
  const workerTotal = workerCount(config.mediaWorkers);
  // The registry reads this node's rooms at each heartbeat (after start), so it can come first.
  const cluster: Cluster | undefined = redisUrl && nodeUrl ? await Cluster.create({ ...config, redisUrl, nodeUrl }, (): LocalState => (workers ? workers.localState() : rooms!.localState())) : undefined;
  // Rooms live in this process (MEDIA_WORKERS=0), or in media workers that main relays to.
  const rooms: Rooms | undefined = workerTotal ? undefined : new Rooms(config, cluster);
  let workers: MediaWorkers | undefined;
  const revocations = rooms?.revocations ?? new Revocations(cluster?.revocationStore(), (tokenId) => workers?.removeTokenHolders(tokenId) ?? 0);
  const recordings = new Recordings(rooms ?? NO_ROOMS, config, cluster);
  await recordings.init();
  if (workerTotal) {
    workers = new MediaWorkers(config, workerTotal, revocations, {
      enqueue: (id) => void recordings.queue.enqueue(id).catch((err: Error) => log.error("could not queue post-processing; the sweep will", { recording: id, error: err.message })),
      recoverCrashed: (id) => recordings.recoverCrashed(id),
    }, cluster);
    await workers.ready();
  }
  // One cap on signaling connections per client address, long-poll sessions and WebSockets alike.
  const connections = new KeyedQuota(() => config.maxConnectionsPerIp);
  const sessions = workers ? workers.sessions() : localSessions(rooms!, config, recordings);
  const isLocal = (room: string) => (workers ? workers.workerOf(room) !== undefined : rooms!.get(room) !== undefined);
  const longPoll = longPollSignaling(sessions, config, connections);
  const client = await loadClient();
  const app = createHttpApp(client, [
    apiAuth(config.apiToken, config.publicApi, config.trustedProxies),
    longPoll.middleware,
    ...(cluster ? [clusterApi(cluster, isLocal)] : []),
    ...(workers ? [workersApi(workers)] : []),
    recordingsApi(recordings, workers?.recording()),
    tokensApi(config, revocations),
    roomsApi(workers ? (method, path, body) => workers!.roomsRequest(method, path, body) : rooms!),
  ], workers ? () => workers!.metrics() : undefined);
  const server = http.createServer(app.callback());
  const signaling = attachWebSocketSignaling(sessions, config, connections);
  server.on("upgrade", (req, socket, head) => {
    if (!signaling.handleUpgrade(req, socket, head)) socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  await cluster?.start();
  if (!config.authSecret) {
    log.warn("OPEN ROOMS: AUTH_SECRET is not set, so anyone who reaches this server can join any room. Set AUTH_SECRET (and API_TOKEN) on a public address.");
  }
  log.info("listening", {
    url: `http://${config.host}:${port}`,
    output: `${config.width}x${config.height}@${config.fps}`,
    recordings: config.recordingsDir,
    postprocessing: recordings.queue.mode,
    opus: config.opusEngine === "inprocess" ? `libopus in process (${opusBuild})` : "ffmpeg children",
    video: config.videoEngine === "library" ? `encoders in process (FFmpeg ${libavVersion()} libraries), decoders in ffmpeg children` : "ffmpeg children",
    client: client.source,
    ...(workers ? { mediaWorkers: workers.count } : {}),
    ...(cluster ? { node: cluster.self.url, boot: cluster.self.boot } : {}),
  });
  return {
    url,
    port,
    get rooms(): Rooms {
      if (!rooms) throw new Error("the rooms live in media workers (MEDIA_WORKERS): ask server.workers");
      return rooms;
    },
    workers,
    recordings,
    config,
    cluster,
    dropWebSocket: (id) => signaling.drop(id),
    async close() {
      // Tell every client first, so pages reconnect elsewhere (long-poll sessions get it in their
      // held GET). Then close the recordings while their mixers still run, then the connections (1001).
      cluster?.drain();
      signaling.notifyShutdown(RECONNECT_AFTER_MS);
      longPoll.notifyShutdown(RECONNECT_AFTER_MS);
      // (Workers' recordings stop first: what they queue reaches main's queue before it closes.)
      await Promise.all([workers ? workers.closeRecordings().then(() => recordings.close()) : recordings.close(), new Promise((r) => setTimeout(r, 300))]);
      longPoll.close();
      signaling.close();
      rooms?.close();
      await workers?.close();
      await cluster?.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  startServer().then(
    (s) => {
      const stop = () => {
        log.info("shutting down: telling clients, closing recordings");
        void s.close().then(() => process.exit(0));
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    },
    (err) => {
      log.error("failed to start", { error: (err as Error).message });
      process.exit(1);
    },
  );
}
