// Where finished recordings wait for post-processing. Two implementations of one contract:
// - BullMQ on Redis (REDIS_URL set): retries with backoff, stalled-job recovery when a worker dies,
//   and workers that may run as separate processes (`npm run worker`) on other machines;
// - embedded (no Redis): the same job runs in-process, one at a time, with the same retries.
// Either way the recording's metadata file carries status and progress, and anything unfinished is
// found again from the storage directory at startup, so a crash loses no recording.
// bullmq is loaded only with REDIS_URL (the embedded default never loads it: ~14 MB).
import type { Job, Queue, Worker } from "bullmq";
import { logger } from "../../telemetry/log.ts";
import { metrics } from "../../telemetry/metrics.ts";
import { finalizeRecording, PermanentJobError, type FinalizeSettings } from "./finalize.ts";
import type { RecordingStore } from "./RecordingStore.ts";

const log = logger("postprocess");
export const QUEUE_NAME = "mixroom-recordings";

export interface PostProcessSettings {
  ffmpegPath: string;
  mp4: boolean;
  audioKbps: number;
  /** Tries per job before it is marked failed. */
  attempts: number;
  /** First retry delay, ms; doubles each time. */
  backoffMs: number;
  /** Redis key prefix of the BullMQ queue. */
  prefix: string;
  /** BullMQ job lock: a worker silent this long is taken for dead and its job runs again, ms. */
  lockMs: number;
}

export interface PostProcessQueue {
  readonly mode: "embedded" | "bullmq";
  enqueue(id: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * One try of the job: marks the recording processing, runs it with progress written to the
 * metadata (throttled), and on failure records the error (status back to pending if it will be
 * retried, failed if not). Rethrows so the queue can schedule the retry.
 */
export async function runJob(
  store: RecordingStore,
  id: string,
  s: FinalizeSettings,
  attempt: { n: number; last: boolean },
  onProgress?: (p: number) => Promise<void>,
): Promise<void> {
  const before = await store.read(id);
  if (before?.status === "done") return; // queued twice, or a lock that ran out on a live worker
  // attempts counts every try, including those a crash or a killed worker cut short.
  const started = await store.update(id, (m) => {
    m.status = "processing";
    m.attempts += 1;
    m.progress = 0;
  });
  if (!started) throw new PermanentJobError(`recording ${id} no longer exists`);
  log.info("post-processing", { recording: id, attempt: attempt.n });
  let lastWrite = 0;
  // The store runs one recording's updates in call order, so these never overtake "done".
  const progress = async (p: number) => {
    const now = Date.now();
    if (p < 1 && now - lastWrite < 500) return;
    lastWrite = now;
    void store.update(id, (m) => (m.progress = Math.round(p * 1000) / 1000)).catch(() => {});
    await onProgress?.(p);
  };
  try {
    await finalizeRecording(store, id, s, progress);
    metrics.recordingJobs.inc({ result: "done" });
    log.info("recording finalized", { recording: id, attempt: attempt.n });
  } catch (err) {
    if (s.signal?.aborted) throw err; // shutdown, not a failure: left "processing" for the next start
    const message = (err as Error).message;
    const permanent = err instanceof PermanentJobError;
    const failed = permanent || attempt.last;
    metrics.recordingJobs.inc({ result: failed ? "failed" : "retry" });
    log.warn(failed ? "post-processing failed" : "post-processing failed; will retry", { recording: id, attempt: attempt.n, error: message });
    await store.update(id, (m) => {
      m.status = failed ? "failed" : "pending";
      m.error = message;
    }).catch(() => {});
    throw err;
  }
}

/** The embedded queue: in-process, one job at a time, retries with exponential backoff. */
export class EmbeddedQueue implements PostProcessQueue {
  readonly mode = "embedded";
  private readonly waiting: { id: string; n: number }[] = [];
  /** Ids waiting, running or waiting for a retry: enqueuing one again is a no-op. */
  private readonly known = new Set<string>();
  private running = false;
  private closed = false;
  private readonly abort = new AbortController();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly store: RecordingStore,
    private readonly s: PostProcessSettings,
  ) {}

  async enqueue(id: string): Promise<void> {
    if (this.closed || this.known.has(id)) return;
    this.known.add(id);
    this.push(id, 1);
  }

  private push(id: string, n: number): void {
    this.waiting.push({ id, n });
    void this.next();
  }

  private async next(): Promise<void> {
    if (this.running || this.closed) return;
    const job = this.waiting.shift();
    if (!job) return;
    this.running = true;
    await this.attempt(job.id, job.n);
    this.running = false;
    void this.next();
  }

  private async attempt(id: string, n: number): Promise<void> {
    const last = n >= this.s.attempts;
    try {
      await runJob(this.store, id, { ffmpegPath: this.s.ffmpegPath, mp4: this.s.mp4, audioKbps: this.s.audioKbps, signal: this.abort.signal }, { n, last });
    } catch (err) {
      // On shutdown the job stays "processing"/"pending" and is found again at the next start.
      if (!this.closed && !last && !(err instanceof PermanentJobError)) {
        // Retry later, without holding up the jobs behind it.
        const t = setTimeout(() => {
          this.timers.delete(t);
          this.push(id, n + 1);
        }, this.s.backoffMs * 2 ** (n - 1));
        this.timers.add(t);
        return;
      }
    }
    this.known.delete(id);
  }

  /** Does not wait: a job cut off here runs again after the next start. */
  async close(): Promise<void> {
    this.closed = true;
    this.abort.abort();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}

function connection(redisUrl: string) {
  // BullMQ's blocking commands need maxRetriesPerRequest null.
  return { url: redisUrl, maxRetriesPerRequest: null };
}

/** The BullMQ queue (producer side). */
export class BullQueue implements PostProcessQueue {
  readonly mode = "bullmq";
  private readonly queue: Queue;

  static async open(redisUrl: string, s: PostProcessSettings): Promise<BullQueue> {
    const { Queue } = await import("bullmq");
    return new BullQueue(redisUrl, s, Queue);
  }

  private constructor(
    redisUrl: string,
    private readonly s: PostProcessSettings,
    QueueClass: typeof Queue,
  ) {
    // Fail fast when Redis is away (the server's sweep queues it later) instead of hanging a stop.
    this.queue = new QueueClass(QUEUE_NAME, { connection: { ...connection(redisUrl), enableOfflineQueue: false }, prefix: s.prefix });
    this.queue.on("error", (err) => log.warn("queue connection error", { error: err.message }));
  }

  async enqueue(id: string): Promise<void> {
    // A job BullMQ gave up on while the recording is still waiting (e.g. the worker lacked the
    // shared folder): try it again rather than let the kept failed job block the id.
    const old = await this.queue.getJob(id);
    if (old && (await old.isFailed())) {
      await old.retry("failed");
      return;
    }
    // jobId = recording id: enqueuing twice (stop, then a restart's rediscovery) makes one job.
    await this.queue.add("finalize", { id }, {
      jobId: id,
      attempts: this.s.attempts,
      backoff: { type: "exponential", delay: this.s.backoffMs },
      removeOnComplete: 1000,
      removeOnFail: 1000,
    });
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}

export interface PostProcessWorker {
  readonly worker: Worker;
  /** Stops at once: a running job's ffmpeg is killed and the job, its lock lapsing, runs again elsewhere. */
  close(): Promise<void>;
}

/** A BullMQ worker: in the server (POSTPROCESS_WORKER=on) or alone (`npm run worker`). */
export async function startBullWorker(redisUrl: string, store: RecordingStore, s: PostProcessSettings): Promise<PostProcessWorker> {
  const { UnrecoverableError, Worker } = await import("bullmq");
  const abort = new AbortController();
  const worker = new Worker(
    QUEUE_NAME,
    async (job: Job<{ id: string }>) => {
      const attempts = job.opts.attempts ?? 1;
      const n = job.attemptsMade + 1;
      try {
        await runJob(store, job.data.id, { ffmpegPath: s.ffmpegPath, mp4: s.mp4, audioKbps: s.audioKbps, signal: abort.signal }, { n, last: n >= attempts }, (p) =>
          job.updateProgress(Math.round(p * 100)),
        );
      } catch (err) {
        if (err instanceof PermanentJobError) throw new UnrecoverableError((err as Error).message);
        throw err;
      }
    },
    {
      connection: connection(redisUrl),
      prefix: s.prefix,
      concurrency: 1,
      lockDuration: s.lockMs,
      stalledInterval: Math.max(1000, Math.round(s.lockMs / 2)),
      maxStalledCount: 3,
    },
  );
  worker.on("error", (err) => log.warn("worker connection error", { error: err.message }));
  worker.on("stalled", (jobId) => log.warn("job stalled (its worker died?): running it again", { job: jobId }));
  // BullMQ can fail a job without our processor's last word (stalled too often): say so on disk too.
  worker.on("failed", (job, err) => {
    const final = err instanceof UnrecoverableError || (job && job.attemptsMade >= (job.opts.attempts ?? 1)) || /stalled/i.test(err.message);
    if (!job || !final || abort.signal.aborted) return;
    void store.update(job.data.id, (m) => {
      if (m.status === "done") return;
      m.status = "failed";
      m.error ??= err.message;
    }).catch(() => {});
  });
  return {
    worker,
    async close() {
      abort.abort();
      await worker.close(true);
    },
  };
}
