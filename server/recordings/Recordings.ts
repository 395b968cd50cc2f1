// Recording as the server offers it: start/stop per room, post-processing on stop, and at
// startup the recovery of anything a crash left behind (a recording cut off mid-way is finalized
// from what reached the disk; an unfinished job runs again).
import fs from "node:fs/promises";
import path from "node:path";
import type { Config } from "../config.ts";
import { logger } from "../log.ts";
import { metrics } from "../metrics.ts";
import type { Rooms } from "../Rooms.ts";
import { BullQueue, EmbeddedQueue, startBullWorker, type PostProcessQueue, type PostProcessSettings } from "./PostProcessQueue.ts";
import { Recording } from "./Recording.ts";
import { newRecordingId, RecordingStore, type RecordingMeta } from "./RecordingStore.ts";

const log = logger("recordings");
/** How often recordings waiting for post-processing are (re)queued, ms. */
const SWEEP_MS = 60_000;

/** A request the state does not allow; `status` is the HTTP status the API answers with. */
export class RecordingError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function postProcessSettings(config: Config): PostProcessSettings {
  return {
    ffmpegPath: config.ffmpegPath,
    mp4: config.recordingMp4,
    audioKbps: config.recordingAudioKbps,
    attempts: config.jobAttempts,
    backoffMs: config.jobBackoffMs,
    lockMs: config.jobLockMs,
    prefix: config.queuePrefix,
  };
}

export class Recordings {
  readonly store: RecordingStore;
  readonly queue: PostProcessQueue;
  private readonly active = new Map<string, Recording | "starting">();
  private readonly emptyHandlers = new Map<string, () => void>();
  private sweeper: NodeJS.Timeout | undefined;
  private worker: ReturnType<typeof startBullWorker> | undefined;

  constructor(
    private readonly rooms: Rooms,
    private readonly config: Config,
  ) {
    this.store = new RecordingStore(config.recordingsDir);
    const pp = postProcessSettings(config);
    if (config.redisUrl) {
      this.queue = new BullQueue(config.redisUrl, pp);
      if (config.postprocessWorker) this.worker = startBullWorker(config.redisUrl, this.store, pp);
    } else {
      this.queue = new EmbeddedQueue(this.store, pp);
    }
  }

  /** Creates the directory, closes out recordings a crash cut off, and queues whatever is unfinished. */
  async init(): Promise<void> {
    await this.store.init();
    for (const m of await this.store.list()) {
      if (m.status !== "recording") continue;
      // No recording survives a restart: this one was cut off by a crash. Its parts hold all
      // but the last cluster; the stop time is when the disk last heard from it.
      let lastWrite = Date.parse(m.startedAt);
      for (const p of m.parts) {
        const st = await fs.stat(path.join(this.store.dirOf(m.id), p)).catch(() => undefined);
        if (st) lastWrite = Math.max(lastWrite, st.mtimeMs);
      }
      await this.store.update(m.id, (x) => {
        x.status = "pending";
        x.endedBy = "crash";
        x.stoppedAt = new Date(lastWrite).toISOString();
      });
      log.warn("recording cut off by a crash: finalizing what was written", { recording: m.id });
    }
    await this.sweep();
    // Queueing can fail (Redis down): the sweep tries again until every recording is queued.
    this.sweeper = setInterval(() => void this.sweep().catch(() => {}), SWEEP_MS);
    this.sweeper.unref();
  }

  /** Queues every recording waiting for post-processing (queueing twice is harmless). */
  private async sweep(): Promise<void> {
    for (const m of await this.store.list()) {
      if ((m.status === "pending" || m.status === "processing") && !this.isActive(m.id)) this.enqueue(m.id);
    }
  }

  private isActive(id: string): boolean {
    return [...this.active.values()].some((r) => r !== "starting" && r.meta.id === id);
  }

  /** Never waits on the queue: a stop must answer even when Redis is down. */
  private enqueue(id: string): void {
    this.queue.enqueue(id).catch((err) =>
      log.error("could not queue post-processing; will try again", { recording: id, error: (err as Error).message }),
    );
  }

  current(roomId: string): RecordingMeta | undefined {
    const r = this.active.get(roomId);
    return r && r !== "starting" ? r.meta : undefined;
  }

  async start(roomId: string): Promise<RecordingMeta> {
    const room = this.rooms.get(roomId);
    const mixer = room?.currentMixer;
    if (!room || !mixer) throw new RecordingError(404, "unknown_room", `no room "${roomId}" with participants in it`);
    if (this.active.has(roomId)) throw new RecordingError(409, "already_recording", `room "${roomId}" is already being recorded`);
    this.active.set(roomId, "starting");
    try {
      const startedAt = new Date();
      const meta: RecordingMeta = {
        id: newRecordingId(roomId, startedAt),
        room: roomId,
        status: "recording",
        startedAt: startedAt.toISOString(),
        parts: [],
        participants: [],
        output: { width: this.config.width, height: this.config.height, fps: this.config.fps },
        progress: 0,
        attempts: 0,
      };
      await this.store.create(meta);
      if (room.currentMixer !== mixer) {
        await this.store.remove(meta.id);
        throw new RecordingError(404, "unknown_room", `room "${roomId}" emptied`);
      }
      const rec = new Recording(meta, this.store, room, mixer, { ffmpegPath: this.config.ffmpegPath });
      this.active.set(roomId, rec);
      // The last one out ends the recording; nobody is left to press stop.
      const onEmpty = () => void this.stop(roomId, "room-empty").catch(() => {});
      room.once("empty", onEmpty);
      this.emptyHandlers.set(roomId, onEmpty);
      room.setRecording({ id: meta.id, startedAt: meta.startedAt });
      metrics.recordingsActive.set(this.active.size);
      log.info("recording started", { recording: meta.id, room: roomId });
      return meta;
    } catch (err) {
      this.active.delete(roomId);
      throw err;
    }
  }

  async stop(roomId: string, endedBy: NonNullable<RecordingMeta["endedBy"]> = "stop"): Promise<RecordingMeta> {
    const rec = this.active.get(roomId);
    if (!rec) {
      if (!this.rooms.get(roomId)) throw new RecordingError(404, "unknown_room", `no room "${roomId}"`);
      throw new RecordingError(409, "not_recording", `room "${roomId}" is not being recorded`);
    }
    if (rec === "starting") throw new RecordingError(409, "starting", `room "${roomId}" is still starting its recording`);
    this.active.delete(roomId);
    metrics.recordingsActive.set(this.active.size);
    const room = this.rooms.get(roomId);
    room?.off("empty", this.emptyHandlers.get(roomId)!);
    this.emptyHandlers.delete(roomId);
    room?.setRecording(null);
    const meta = await rec.stop(endedBy);
    this.enqueue(meta.id);
    return meta;
  }

  /** Deletes a recording that is neither being recorded nor processed. */
  async remove(id: string): Promise<void> {
    const meta = await this.store.read(id);
    if (!meta) throw new RecordingError(404, "unknown_recording", `no recording "${id}"`);
    if (meta.status === "recording" || meta.status === "processing") {
      throw new RecordingError(409, "busy", `recording "${id}" is ${meta.status}; delete it when it is done`);
    }
    await this.store.remove(id);
    log.info("recording deleted", { recording: id });
  }

  /** Shutdown: running recordings are stopped (their files closed) and left pending for the next start. */
  async close(): Promise<void> {
    clearInterval(this.sweeper);
    // The worker first, so it does not start on the recordings stopped below.
    await this.worker?.close().catch(() => {});
    const rooms = [...this.active.keys()];
    await Promise.all(rooms.map((r) => this.stop(r, "shutdown").catch(() => {})));
    await this.queue.close().catch(() => {});
  }
}
