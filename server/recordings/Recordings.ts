// Recording as the server offers it: start/stop per room, post-processing on stop, and at
// startup the recovery of anything a crash left behind (a recording cut off mid-way is finalized
// from what reached the disk; an unfinished job runs again).
import fs from "node:fs/promises";
import path from "node:path";
import type { Cluster } from "../cluster/Cluster.ts";
import type { Config } from "../config.ts";
import { logger } from "../../telemetry/log.ts";
import { metrics } from "../../telemetry/metrics.ts";
import type { Rooms } from "../Rooms.ts";
import { belowFloor, measureFreeMb } from "./diskSpace.ts";
import { BullQueue, EmbeddedQueue, startBullWorker, type PostProcessQueue, type PostProcessSettings, type PostProcessWorker } from "./PostProcessQueue.ts";
import { Recording } from "./Recording.ts";
import { newRecordingId, RecordingStore, type RecordingMeta } from "./RecordingStore.ts";

const log = logger("recordings");
/** How often recordings waiting for post-processing are (re)queued, ms. */
const SWEEP_MS = 60_000;
/** How often free disk space is checked while anything records, ms. */
const DISK_CHECK_MS = 2000;

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

/**
 * A media worker's recordings (MEDIA_WORKERS): the worker records its own rooms, and main keeps what
 * is server-wide — the MAX_RECORDINGS slots, the post-processing queue, crash recovery.
 */
export interface InWorker {
  /** Takes one of the server's recording slots for `room`: undefined, or why not. */
  acquireSlot(room: string): Promise<string | undefined>;
  /** The recording of `room` ended (or never started): its slot is free; `id` once it has one. */
  slotChanged(room: string, id: string | null): void;
  enqueue(id: string): void;
  /** Written into each recording's metadata: the node (several nodes) whose survivors close it out. */
  node?: RecordingMeta["node"];
}

export class Recordings {
  readonly store: RecordingStore;
  private q: PostProcessQueue | undefined;
  private readonly active = new Map<string, Recording | "starting">();
  private readonly emptyHandlers = new Map<string, () => void>();
  private sweeper: NodeJS.Timeout | undefined;
  private orphanTimer: NodeJS.Timeout | undefined;
  private worker: PostProcessWorker | undefined;
  private diskTimer: NodeJS.Timeout | undefined;
  private checkingDisk = false;

  constructor(
    private readonly rooms: Pick<Rooms, "get">,
    // The server's own config object, not a copy: the quotas are read at each check.
    private readonly config: Config,
    /** Several nodes share RECORDINGS_DIR: a recording is closed out only once its node is gone, by one survivor. */
    private readonly cluster?: Cluster,
    /** Set in a media worker: see InWorker. */
    private readonly inWorker?: InWorker,
  ) {
    this.store = new RecordingStore(config.recordingsDir);
  }

  /** The post-processing queue: BullMQ with Redis, else embedded (set by init). */
  get queue(): PostProcessQueue {
    if (!this.q) throw new Error("Recordings.init() has not run");
    return this.q;
  }

  /** Opens the queue, creates the directory, closes out recordings a crash cut off, and queues whatever is unfinished. */
  async init(): Promise<void> {
    const pp = postProcessSettings(this.config);
    const w = this.inWorker;
    if (w) {
      // Queueing, sweeping and recovery are main's: a worker only records.
      this.q = { mode: this.config.redisUrl ? "bullmq" : "embedded", enqueue: async (id) => w.enqueue(id), close: async () => {} };
      await this.store.init();
      return;
    }
    if (this.config.redisUrl) {
      this.q = await BullQueue.open(this.config.redisUrl, pp);
      if (this.config.postprocessWorker) this.worker = await startBullWorker(this.config.redisUrl, this.store, pp);
    } else {
      this.q = new EmbeddedQueue(this.store, pp);
    }
    await this.store.init();
    await this.adoptOrphans();
    await this.sweep();
    // Queueing can fail (Redis down): the sweep tries again until every recording is queued.
    this.sweeper = setInterval(() => void this.sweep().catch(() => {}), SWEEP_MS);
    this.sweeper.unref();
    if (this.cluster) {
      // A node that dies leaves its recordings "recording": the survivors look for them as often
      // as a dead node is forgotten.
      this.orphanTimer = setInterval(() => void this.adoptOrphans().catch((err) => log.warn("looking for orphaned recordings failed", { error: (err as Error).message })), this.config.nodeTtlMs);
      this.orphanTimer.unref();
    }
  }

  /**
   * Recordings left "recording" by a process that is gone: cut off by a crash. Alone, that is every
   * one found at startup (no recording survives a restart); with several nodes, those whose node no
   * longer runs (its registration expired, or it restarted), each taken by exactly one survivor.
   */
  private async adoptOrphans(): Promise<void> {
    for (const m of await this.store.list()) {
      if (m.status !== "recording" || this.isActive(m.id)) continue;
      if (this.cluster && m.node) {
        // Another registry's recording (a folder shared by two deployments) is theirs to judge.
        if (m.node.cluster !== this.config.clusterPrefix) continue;
        if (!this.cluster.healthy || (await this.cluster.alive(m.node))) continue;
        if (!(await this.cluster.claim(`recording:${m.id}`, 10 * 60_000))) continue;
      }
      await this.closeOutCrashed(m);
      if (this.cluster) this.enqueue(m.id);
    }
  }

  /** A recording whose media worker died with it (main, MEDIA_WORKERS): finalized from what reached the disk. */
  async recoverCrashed(id: string): Promise<void> {
    const m = await this.store.read(id);
    if (!m || m.status !== "recording") return;
    await this.closeOutCrashed(m);
    this.enqueue(id);
  }

  /** Its parts hold all but the last cluster; the stop time is when the disk last heard from it. */
  private async closeOutCrashed(m: RecordingMeta): Promise<void> {
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
    log.warn("recording cut off by a crash: finalizing what was written", { recording: m.id, node: m.node?.id });
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

  /** Free space and floor when free space is under RECORDINGS_MIN_FREE_MB, else undefined. */
  private async diskLow(): Promise<{ free: number; floor: number } | undefined> {
    const floor = this.config.recordingsMinFreeMb;
    if (floor <= 0) return undefined;
    try {
      const free = await measureFreeMb(this.config.recordingsDir);
      return belowFloor(free, floor) ? { free, floor } : undefined;
    } catch (err) {
      // Not knowing is no reason to refuse or cut off a recording; the next check tries again.
      log.warn("could not measure free disk space", { dir: this.config.recordingsDir, error: (err as Error).message });
      return undefined;
    }
  }

  /** Keeps the gauge current; the disk watcher runs only while something records. */
  private activeChanged(): void {
    metrics.recordingsActive.set(this.active.size);
    if (this.active.size > 0) return;
    clearInterval(this.diskTimer);
    this.diskTimer = undefined;
  }

  /** A full disk would cut every recording off mid-cluster: stop them cleanly while there is still room. */
  private async checkDisk(): Promise<void> {
    if (this.checkingDisk) return;
    this.checkingDisk = true;
    try {
      const low = await this.diskLow();
      const rooms = [...this.active].filter(([, r]) => r !== "starting").map(([room]) => room);
      if (!low || rooms.length === 0) return;
      log.warn("free disk space below RECORDINGS_MIN_FREE_MB: stopping every recording", {
        freeMb: Math.floor(low.free), floorMb: low.floor, rooms,
      });
      await Promise.all(rooms.map(async (room) => {
        try {
          await this.stop(room, "disk_low");
          metrics.recordingsStoppedDiskLow.inc();
        } catch {
          // Stopped meanwhile by someone else.
        }
      }));
    } finally {
      this.checkingDisk = false;
    }
  }

  async start(roomId: string): Promise<RecordingMeta> {
    const room = this.rooms.get(roomId);
    const mixer = room?.currentMixer;
    if (!room || !mixer) throw new RecordingError(404, "unknown_room", `no room "${roomId}" with participants in it`);
    if (this.active.has(roomId)) throw new RecordingError(409, "already_recording", `room "${roomId}" is already being recorded`);
    // Counted before any await, and "starting" counts, so simultaneous starts cannot pass together.
    const max = this.config.maxRecordings;
    if (this.active.size >= max) {
      throw new RecordingError(429, "too_many_recordings", `${this.active.size} recordings are running, the server's limit (MAX_RECORDINGS=${max}); stop one first`);
    }
    this.active.set(roomId, "starting");
    let slot = false;
    try {
      if (this.inWorker) {
        const refused = await this.inWorker.acquireSlot(roomId);
        if (refused) throw new RecordingError(429, "too_many_recordings", refused);
        slot = true;
      }
      const low = await this.diskLow();
      if (low) {
        throw new RecordingError(507, "disk_low", `only ${Math.floor(low.free)} MB free for recordings, under the floor (RECORDINGS_MIN_FREE_MB=${low.floor})`);
      }
      const startedAt = new Date();
      const meta: RecordingMeta = {
        id: newRecordingId(roomId, startedAt),
        room: roomId,
        status: "recording",
        startedAt: startedAt.toISOString(),
        parts: [],
        participants: [],
        output: { width: this.config.width, height: this.config.height, fps: this.config.fps, codec: this.config.videoCodecs[0] },
        progress: 0,
        attempts: 0,
        ...(this.cluster ? { node: { id: this.cluster.self.id, boot: this.cluster.self.boot, cluster: this.config.clusterPrefix } } : {}),
        ...(this.inWorker?.node ? { node: this.inWorker.node } : {}),
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
      this.activeChanged();
      if (!this.diskTimer) {
        this.diskTimer = setInterval(() => void this.checkDisk(), DISK_CHECK_MS);
        this.diskTimer.unref();
      }
      this.inWorker?.slotChanged(roomId, meta.id);
      log.info("recording started", { recording: meta.id, room: roomId });
      return meta;
    } catch (err) {
      this.active.delete(roomId);
      this.activeChanged();
      if (slot) this.inWorker?.slotChanged(roomId, null);
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
    this.activeChanged();
    const room = this.rooms.get(roomId);
    room?.off("empty", this.emptyHandlers.get(roomId)!);
    this.emptyHandlers.delete(roomId);
    room?.setRecording(null);
    const meta = await rec.stop(endedBy);
    this.inWorker?.slotChanged(roomId, null);
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
    clearInterval(this.orphanTimer);
    clearInterval(this.diskTimer);
    // The worker first, so it does not start on the recordings stopped below.
    await this.worker?.close().catch(() => {});
    const rooms = [...this.active.keys()];
    await Promise.all(rooms.map((r) => this.stop(r, "shutdown").catch(() => {})));
    await this.q?.close().catch(() => {});
  }
}
