// `npm run worker`: a post-processing worker on its own (REDIS_URL required). Run as many as you
// like, on any machine that mounts the same RECORDINGS_DIR; a worker that dies mid-job has its
// job picked up by another once its lock (JOB_LOCK_MS) runs out.
import { pathToFileURL } from "node:url";
import { killFfmpegOnExit, setFfmpegSpawning } from "../mixer/FfmpegProcess.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { logger, setLogLevel } from "../telemetry/log.ts";
import { QUEUE_NAME, startBullWorker } from "./recordings/PostProcessQueue.ts";
import { postProcessSettings } from "./recordings/Recordings.ts";
import { RecordingStore } from "./recordings/RecordingStore.ts";

const log = logger("worker");

export async function startWorker() {
  const config = loadConfig();
  setLogLevel(config.logLevel);
  killFfmpegOnExit();
  setFfmpegSpawning(config.ffmpegSpawn);
  if (!config.redisUrl) {
    throw new ConfigError("npm run worker needs REDIS_URL (without Redis the server post-processes in-process)");
  }
  const store = new RecordingStore(config.recordingsDir);
  await store.init();
  const worker = await startBullWorker(config.redisUrl, store, postProcessSettings(config));
  await worker.worker.waitUntilReady();
  log.info("worker ready", { queue: QUEUE_NAME, recordings: config.recordingsDir, pid: process.pid });
  return worker;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  startWorker().then(
    (worker) => {
      const stop = () => worker.close().then(() => process.exit(0));
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    },
    (err) => {
      log.error("worker failed to start", { error: (err as Error).message });
      process.exit(1);
    },
  );
}
