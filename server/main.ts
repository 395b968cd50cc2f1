// Entry point: `npm start` runs this; tests and the benchmark call startServer().
import http from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { loadConfig, type Config } from "./config.ts";
import { bundleClient } from "./clientBundle.ts";
import { apiAuth, createHttpApp } from "./http.ts";
import { longPollSignaling } from "./longpoll.ts";
import { logger, setLogLevel } from "./log.ts";
import { recordingsApi } from "./recordings/api.ts";
import { Recordings } from "./recordings/Recordings.ts";
import { Rooms } from "./Rooms.ts";
import { attachWebSocketSignaling } from "./signaling.ts";

const log = logger("server");

export interface RunningServer {
  url: string;
  port: number;
  rooms: Rooms;
  recordings: Recordings;
  config: Config;
  /** Drops the signaling WebSocket(s) of a participant as a network failure would (for tests). */
  dropWebSocket(participantId: string): boolean;
  close(): Promise<void>;
}

export async function startServer(overrides: Partial<Config> = {}): Promise<RunningServer> {
  const config = { ...loadConfig(), ...overrides };
  setLogLevel(config.logLevel);
  const rooms = new Rooms(config);
  const recordings = new Recordings(rooms, config);
  await recordings.init();
  rooms.recordingControl = recordings;
  const longPoll = longPollSignaling(rooms, config);
  const app = createHttpApp(rooms, await bundleClient(), [apiAuth(config.apiToken), longPoll.middleware, recordingsApi(recordings)]);
  const server = http.createServer(app.callback());
  const signaling = attachWebSocketSignaling(rooms, config);
  server.on("upgrade", (req, socket, head) => {
    if (!signaling.handleUpgrade(req, socket, head)) socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  log.info("listening", {
    url: `http://${config.host}:${port}`,
    output: `${config.width}x${config.height}@${config.fps}`,
    recordings: config.recordingsDir,
    postprocessing: recordings.queue.mode,
  });
  return {
    url,
    port,
    rooms,
    recordings,
    config,
    dropWebSocket: (id) => signaling.drop(id),
    async close() {
      longPoll.close();
      signaling.close();
      // Before the rooms: a recording closes its file while its mixer still runs.
      await recordings.close();
      rooms.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  startServer().then(
    (s) => {
      const stop = () => s.close().then(() => process.exit(0));
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    },
    (err) => {
      log.error("failed to start", { error: (err as Error).message });
      process.exit(1);
    },
  );
}
