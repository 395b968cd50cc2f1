// Rooms on every core (MEDIA_WORKERS): main keeps HTTP, the signaling transports and placement; each
// room's media runs in one of N forked media workers (./worker.ts), as mediasoup places routers on
// its workers. Main places a room on the least-loaded worker that is not over its budget and keeps
// it there while it lives; every client message is checked at arrival here (rate, schema, and for
// a join: token, cluster placement, the server-wide caps) and then relayed to the room's worker.
// A worker that dies ends only its rooms: their clients get `shutdown` and reconnect, and main
// starts the worker again (mixer/restarts.ts's policy) and places them anew.
import { fork, type ChildProcess } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Restarts } from "../../mixer/restarts.ts";
import { logger } from "../../telemetry/log.ts";
import { addCollector, metrics } from "../../telemetry/metrics.ts";
import { AdmissionError } from "../admission.ts";
import type { Cluster, LocalState } from "../cluster/Cluster.ts";
import { ConfigError, type Config } from "../config.ts";
import type { CloseReason } from "../Participant.ts";
import { ProtocolError, type ClientMessage, type ServerMessage } from "../protocol.ts";
import type { Revocations } from "../revocations.ts";
import { RecordingError } from "../recordings/Recordings.ts";
import type { RecordingMeta } from "../recordings/RecordingStore.ts";
import { roomsRoute, type ApiReply } from "../roomsApi.ts";
import { checkJoinToken, GuardedSession, placeJoin, type SessionFactory } from "../signaling/session.ts";
import { LOAD_SAMPLE_MS } from "../overload.ts";
import { SeatLedger } from "./SeatLedger.ts";
import { portableConfig, WorkerCallError, type MainToWorker, type WorkerCall, type WorkerLoad, type WorkerToMain } from "./channel.ts";

const log = logger("media-workers");
/** A new room's cost until the worker's next load sample shows it, in cores (spreads a burst of new rooms). */
const NEW_ROOM_CORES = 0.15;
/** What a client whose worker died waits before it reconnects. */
export const WORKER_LOST_RECONNECT_MS = 500;
/** A worker call (an API request, metrics) that takes longer than this fails. */
const CALL_TIMEOUT_MS = 10_000;
const READY_TIMEOUT_MS = 30_000;
/** A room placed on a worker counts as its own this long before the worker's report must show it. */
const PLACED_GRACE_MS = 5000;

/** How many media workers `MEDIA_WORKERS` asks for ("auto": one per core). */
export function workerCount(setting: number | "auto"): number {
  return setting === "auto" ? os.availableParallelism() : setting;
}

/** Where the worker's code is: beside this file (tsx), or dist/media-worker.js in the build. */
function workerEntry(): { file: string; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith(".ts")) return { file: path.join(path.dirname(here), "worker.ts"), execArgv: ["--import", "tsx"] };
  // The build: the worker runs with the server's own Node flags.
  return { file: path.join(path.dirname(here), "media-worker.js"), execArgv: process.execArgv };
}

/** A worker's share of RTC_PORT_RANGE (each binds its own UDP ports). */
export function portSlice(range: [number, number] | undefined, index: number, count: number): [number, number] | undefined {
  if (!range) return undefined;
  const size = Math.floor((range[1] - range[0] + 1) / count);
  return [range[0] + index * size, range[0] + (index + 1) * size - 1];
}

/** One media worker as main sees it. */
class WorkerHandle {
  proc: ChildProcess | undefined;
  pid: number | undefined;
  ready = false;
  load: WorkerLoad | undefined;
  /** Rooms placed here since the last load sample (not yet in its CPU figure). */
  placedSinceSample = 0;
  /** Rooms placed here not yet in its report, and when (a join refused there never shows up). */
  readonly placedRooms = new Map<string, number>();
  /** The sessions relayed here, by their id on the channel. */
  readonly sessions = new Map<number, RelayedSession>();
  readonly restarts = new Restarts();
  starts = 0;

  constructor(readonly index: number) {}

  post(m: MainToWorker): void {
    if (this.proc?.connected) this.proc.send(m);
  }

  /** The load placement reads: measured CPU plus what was placed since. */
  get score(): number {
    return (this.load?.cpuCores ?? 0) + this.placedSinceSample * NEW_ROOM_CORES;
  }

  get busy(): boolean {
    return (this.load?.level ?? 0) >= 1;
  }
}

/** A client's session whose room is in a media worker: checked here, acted on there. */
class RelayedSession extends GuardedSession {
  private static nextSid = 1;
  readonly sid = RelayedSession.nextSid++;
  worker: WorkerHandle | undefined;
  participantId: string | undefined;
  /** A join is on its way to the worker (its seat is reserved). */
  private joining = false;
  private lost = false;

  constructor(
    private readonly pool: MediaWorkers,
    config: Config,
    send: (m: ServerMessage) => void,
    address: string,
    private readonly hangUp: () => void,
  ) {
    super(config, send, address);
  }

  protected async handle(msg: ClientMessage, raw: string | Buffer): Promise<void> {
    if (this.lost) throw new ProtocolError("not_joined", "this call's media worker stopped; reconnect");
    const text = typeof raw === "string" ? raw : raw.toString("utf8");
    if (msg.type !== "join") {
      // Before any join the worker would say the same.
      if (!this.worker) throw new ProtocolError("not_joined", `"${msg.type}" before "join"`);
      this.worker.post({ t: "message", sid: this.sid, raw: text });
      if (msg.type === "leave" && !this.joining) {
        // Its seat is free once the worker acts on it, before any later join of this session.
        this.participantId = undefined;
        this.pool.ledger.release(this);
      }
      return;
    }
    // Every join passes main's checks: none reaches a worker any other way.
    if (this.joining) throw new ProtocolError("already_joined", "a join is already on its way; wait for its answer");
    if (this.participantId) throw new ProtocolError("already_joined", "already joined; send leave first");
    if (!(await this.pool.routeJoin(this, msg.room, msg.token))) return; // sent to the room's node
    if (this.lost) throw new ProtocolError("not_joined", "this call's media worker stopped; reconnect");
    if (this.participantId || this.joining) throw new ProtocolError("already_joined", "already joined");
    try {
      this.pool.ledger.reserve(this, msg.room);
    } catch (err) {
      if (err instanceof AdmissionError) throw new ProtocolError(err.code, err.message);
      throw err;
    }
    let target: WorkerHandle;
    try {
      target = this.pool.place(msg.room);
    } catch (err) {
      this.pool.ledger.release(this);
      throw err;
    }
    if (this.worker !== target) {
      if (this.worker) this.detachFrom(this.worker, "left");
      this.worker = target;
      target.sessions.set(this.sid, this);
      target.post({ t: "open", sid: this.sid, address: this.address });
    }
    this.joining = true;
    target.post({ t: "message", sid: this.sid, raw: text, join: true });
  }

  /** The worker finished the join: seated (participant) or refused (its reply has gone out). */
  joinDone(): void {
    this.joining = false;
    if (!this.participantId) this.pool.ledger.release(this);
  }

  seat(participant: string | null): void {
    if (participant) {
      this.participantId = participant;
      return;
    }
    // A seat lost (left, kicked, room ended); during a newer join, that join's reservation stays.
    if (this.joining) return;
    this.participantId = undefined;
    this.pool.ledger.release(this);
  }

  private detachFrom(w: WorkerHandle, reason: CloseReason): void {
    w.sessions.delete(this.sid);
    w.post({ t: "close", sid: this.sid, reason });
  }

  leave(reason: CloseReason = "left"): void {
    this.pool.ledger.release(this);
    this.participantId = undefined;
    this.joining = false;
    if (this.worker) this.detachFrom(this.worker, reason);
    this.worker = undefined;
  }

  forward(m: ServerMessage): void {
    this.send(m);
  }

  /** Its worker died: the client is told to come back in a moment, and its connection ends. */
  workerLost(): void {
    this.lost = true;
    this.pool.ledger.release(this);
    this.participantId = undefined;
    this.worker = undefined;
    this.send({ type: "shutdown", reconnectAfterMs: WORKER_LOST_RECONNECT_MS });
    this.hangUp();
  }
}

export interface WorkerInfo {
  index: number;
  pid: number | undefined;
  ready: boolean;
  starts: number;
  load: WorkerLoad | undefined;
}

/** What main does with the workers' recordings: queue them, and finish those a dead worker left. */
export interface RecordingHooks {
  enqueue(id: string): void;
  recoverCrashed(id: string): Promise<void>;
}

/** Recording as the API drives it (start, stop, current), whichever worker holds the room. */
export interface RoomRecording {
  start(room: string): Promise<RecordingMeta>;
  stop(room: string): Promise<RecordingMeta>;
  current(room: string): Promise<RecordingMeta | undefined>;
}

/** The media workers of this server, their rooms, and the sessions relayed to them. */
export class MediaWorkers {
  private readonly workers: WorkerHandle[];
  /** Which worker holds a room, from the first join placed there until the worker no longer reports it. */
  private readonly roomWorker = new Map<string, WorkerHandle>();
  private readonly calls = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  private nextCall = 1;
  private closing = false;
  readonly ledger: SeatLedger<RelayedSession>;
  private readonly stopCollecting: () => void;
  private readonly loadTimer: NodeJS.Timeout;
  private lastCpu = process.cpuUsage();
  private lastCpuAt = performance.now();
  /** MAX_RECORDINGS across workers: each recording's slot, its worker and (once started) its id. */
  private readonly recordingSlots = new Map<string, { w: WorkerHandle; id: string | null }>();

  constructor(
    private readonly config: Config,
    count: number,
    /** Joins check tokens against these (main's: the cluster's Redis, or memory). */
    private readonly revocations: Revocations,
    private readonly recordingHooks: RecordingHooks,
    private readonly cluster?: Cluster,
  ) {
    const range = config.rtcPortRange;
    if (range && range[1] - range[0] + 1 < count * 2) {
      throw new ConfigError(`RTC_PORT_RANGE has ${range[1] - range[0] + 1} ports: too few to split between ${count} media workers (set MEDIA_WORKERS lower, or widen the range)`);
    }
    this.workers = Array.from({ length: count }, (_, i) => new WorkerHandle(i));
    this.ledger = new SeatLedger(config, (room) => this.roomWorker.has(room), () => this.roomWorker.size);
    this.stopCollecting = addCollector(() => this.collect());
    this.loadTimer = setInterval(() => this.shareLoad(), LOAD_SAMPLE_MS);
    this.loadTimer.unref();
    for (const w of this.workers) this.start(w);
  }

  get count(): number {
    return this.workers.length;
  }

  /** Resolves once every worker has started (or rejects after READY_TIMEOUT_MS). */
  async ready(): Promise<void> {
    const t0 = Date.now();
    while (!this.workers.every((w) => w.ready)) {
      if (Date.now() - t0 > READY_TIMEOUT_MS) throw new Error(`media workers did not start within ${READY_TIMEOUT_MS} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private start(w: WorkerHandle): void {
    const { file, execArgv } = workerEntry();
    const proc = fork(file, [], { execArgv, env: { ...process.env, MIXROOM_MEDIA_WORKER: "1" }, stdio: "inherit" });
    w.proc = proc;
    w.ready = false;
    w.load = undefined;
    w.starts++;
    const cores = os.availableParallelism();
    const share = this.workers.length;
    const config: Config = {
      ...portableConfig(this.config),
      decodeServerPixelsPerSecond: Math.max(1, Math.floor(this.config.decodeServerPixelsPerSecond / share)),
      rtcPortRange: portSlice(this.config.rtcPortRange, w.index, share),
    };
    log.debug("starting media worker", { index: w.index, cores, share });
    proc.on("message", (m: WorkerToMain) => this.onMessage(w, m));
    proc.on("exit", (code, signal) => this.onExit(w, proc, code, signal));
    proc.on("error", (err) => log.error("media worker process error", { index: w.index, error: err.message }));
    const node = this.cluster ? { id: this.cluster.self.id, boot: this.cluster.self.boot, cluster: this.config.clusterPrefix } : undefined;
    proc.send({ t: "init", index: w.index, workers: share, config, node } satisfies MainToWorker);
  }

  private onMessage(w: WorkerHandle, m: WorkerToMain): void {
    switch (m.t) {
      case "ready":
        w.pid = m.pid;
        w.ready = true;
        log.info("media worker ready", { index: w.index, pid: m.pid });
        return;
      case "send":
        return this.session(w, m.sid)?.forward(m.msg);
      case "seat":
        return this.session(w, m.sid)?.seat(m.participant);
      case "joinDone":
        return this.session(w, m.sid)?.joinDone();
      case "ask": {
        const max = this.config.maxRecordings;
        const n = this.recordingSlots.size;
        if (n >= max) return w.post({ t: "answer", id: m.id, refused: `${n} recordings are running, the server's limit (MAX_RECORDINGS=${max}); stop one first` });
        this.recordingSlots.set(m.room, { w, id: null });
        return w.post({ t: "answer", id: m.id });
      }
      case "recording": {
        const slot = this.recordingSlots.get(m.room);
        if (slot?.w !== w) return;
        if (m.id) slot.id = m.id;
        else this.recordingSlots.delete(m.room);
        return;
      }
      case "enqueue":
        return this.recordingHooks.enqueue(m.recording);
      case "load": {
        w.load = m.load;
        w.placedSinceSample = 0;
        const held = new Set(m.load.rooms);
        const now = performance.now();
        for (const [room, at] of w.placedRooms) if (held.has(room) || now - at > PLACED_GRACE_MS) w.placedRooms.delete(room);
        for (const [room, owner] of this.roomWorker) {
          if (owner === w && !held.has(room) && !w.placedRooms.has(room)) this.forget(room);
        }
        for (const room of held) if (!this.roomWorker.has(room)) this.roomWorker.set(room, w);
        return;
      }
      case "reply": {
        const c = this.calls.get(m.id);
        if (!c) return;
        this.calls.delete(m.id);
        clearTimeout(c.timer);
        if (m.ok) c.resolve(m.value);
        else c.reject(new WorkerCallError(m.status, m.code, m.message));
        return;
      }
    }
  }

  private session(w: WorkerHandle, sid: number): RelayedSession | undefined {
    return w.sessions.get(sid);
  }

  private forget(room: string): void {
    this.roomWorker.delete(room);
    this.cluster?.release(room);
  }

  private onExit(w: WorkerHandle, proc: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (w.proc !== proc) return;
    w.proc = undefined;
    w.ready = false;
    w.load = undefined;
    if (this.closing) return;
    const lost = [...w.sessions.values()];
    w.sessions.clear();
    w.placedRooms.clear();
    const rooms = [...this.roomWorker].filter(([, o]) => o === w).map(([r]) => r);
    for (const r of rooms) this.forget(r);
    metrics.mediaWorkerExits.inc({ worker: String(w.index) });
    log.error("media worker died: its rooms end, their clients reconnect", { index: w.index, pid: w.pid, code, signal, rooms, sessions: lost.length });
    for (const s of lost) s.workerLost();
    for (const [room, slot] of this.recordingSlots) {
      if (slot.w !== w) continue;
      this.recordingSlots.delete(room);
      if (slot.id) {
        const id = slot.id;
        void this.recordingHooks.recoverCrashed(id).catch((err: Error) => log.error("could not finalize the recording of a dead media worker", { recording: id, error: err.message }));
      }
    }
    const delay = w.restarts.failed();
    if (delay === undefined) {
      log.error("media worker failed too often: not starting it again", { index: w.index });
      return;
    }
    setTimeout(() => {
      if (!this.closing) this.start(w);
    }, delay).unref();
  }

  /** Where a new session's room goes: the worker that holds it, else the least-loaded one with room. */
  place(room: string): WorkerHandle {
    const held = this.roomWorker.get(room);
    if (held?.ready) return held;
    const up = this.workers.filter((w) => w.ready);
    if (!up.length) throw new ProtocolError("server_busy", "the server's media workers are restarting; try again in a moment");
    const free = up.filter((w) => !w.busy);
    const w = (free.length ? free : up).reduce((a, b) => (b.score < a.score ? b : a));
    w.placedSinceSample++;
    w.placedRooms.set(room, performance.now());
    this.roomWorker.set(room, w);
    return w;
  }

  /** A join's checks in main, before it goes to a worker: token, and the room's node when there are several. */
  async routeJoin(s: RelayedSession, room: string, token: string | undefined): Promise<boolean> {
    await checkJoinToken(this.config, this.revocations, room, token);
    if (!this.cluster) return true;
    return placeJoin(this.cluster, this.roomWorker.has(room), s.address, room, (m) => s.forward(m));
  }

  /** Sessions for the transports: each relayed to its room's worker. */
  sessions(): SessionFactory {
    return (send, address, hangUp) => new RelayedSession(this, this.config, send, address, hangUp);
  }

  /** One call to worker `w`. */
  call(w: WorkerHandle, call: WorkerCall): Promise<unknown> {
    if (!w.ready) return Promise.reject(new WorkerCallError(503, "worker_unavailable", `media worker ${w.index} is restarting`));
    const id = this.nextCall++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.calls.delete(id);
        reject(new WorkerCallError(504, "worker_timeout", `media worker ${w.index} did not answer in ${CALL_TIMEOUT_MS} ms`));
      }, CALL_TIMEOUT_MS);
      this.calls.set(id, { resolve, reject, timer });
      w.post({ t: "call", id, call });
    });
  }

  /** The same call to every running worker; a worker that fails is left out (and logged). */
  async callAll(call: WorkerCall): Promise<unknown[]> {
    const out = await Promise.allSettled(this.workers.filter((w) => w.ready).map((w) => this.call(w, call)));
    const values: unknown[] = [];
    for (const r of out) {
      if (r.status === "fulfilled") values.push(r.value);
      else log.warn("a media worker call failed", { op: call.op, error: (r.reason as Error).message });
    }
    return values;
  }

  /** A rooms API request (roomsApi.ts): the list from every worker, a room's to the worker holding it. */
  async roomsRequest(method: string, reqPath: string, body: unknown): Promise<ApiReply | undefined> {
    const route = roomsRoute(reqPath);
    if (!route) return undefined;
    if ("list" in route) {
      if (method !== "GET") return undefined;
      return { status: 200, body: (await this.callAll({ op: "rooms", method, path: reqPath, body })).flatMap((r) => ((r as ApiReply | null)?.body as unknown[]) ?? []) };
    }
    // A room no worker holds: any worker answers (the same checks, then 404).
    const w = this.roomWorker.get(route.room) ?? this.workers.find((x) => x.ready);
    if (!w) return { status: 503, body: { error: "worker_unavailable", message: "the media workers are restarting" } };
    try {
      return ((await this.call(w, { op: "rooms", method, path: reqPath, body })) as ApiReply | null) ?? undefined;
    } catch (err) {
      const e = err as WorkerCallError;
      return { status: e.status ?? 500, body: { error: e.code ?? "internal", message: e.message } };
    }
  }

  /** Recording of the rooms, for the API: sent to the worker that holds the room. */
  recording(): RoomRecording {
    const ask = async (action: "start" | "stop" | "current", room: string): Promise<unknown> => {
      const w = this.roomWorker.get(room);
      if (!w) {
        if (action === "current") return null;
        throw new RecordingError(404, "unknown_room", action === "start" ? `no room "${room}" with participants in it` : `no room "${room}"`);
      }
      try {
        return await this.call(w, { op: "record", action, room });
      } catch (err) {
        const e = err as WorkerCallError;
        throw new RecordingError(e.status ?? 500, e.code ?? "internal", e.message);
      }
    };
    return {
      start: async (room) => (await ask("start", room)) as RecordingMeta,
      stop: async (room) => (await ask("stop", room)) as RecordingMeta,
      current: async (room) => ((await ask("current", room)) as RecordingMeta | null) ?? undefined,
    };
  }

  /** Stops every worker's recordings, as a shutdown does. */
  async closeRecordings(): Promise<void> {
    await this.callAll({ op: "closeRecordings" });
  }

  /** Removes a revoked token's holders in every worker; how many. */
  async removeTokenHolders(tokenId: string): Promise<number> {
    return (await this.callAll({ op: "revoke", tokenId })).reduce<number>((n, v) => n + Number(v), 0);
  }

  /** Every worker's metrics, as prom-client JSON, for main to sum with its own. */
  async metrics(): Promise<object[][]> {
    return (await this.callAll({ op: "metrics" })) as object[][];
  }

  /** Which worker holds a room, if any (tests, logs). */
  workerOf(room: string): WorkerInfo | undefined {
    const w = this.roomWorker.get(room);
    return w && this.info(w);
  }

  private info(w: WorkerHandle): WorkerInfo {
    return { index: w.index, pid: w.pid, ready: w.ready, starts: w.starts, load: w.load };
  }

  list(): WorkerInfo[] {
    return this.workers.map((w) => this.info(w));
  }

  /** Test mode: spins worker `index`'s loop for `ms` (MEDIA_WORKER_TEST_HOOKS=1 in its environment). */
  spin(index: number, ms: number): Promise<unknown> {
    return this.call(this.workers[index]!, { op: "spin", ms });
  }

  /** The server's state for the node registry's heartbeat: the workers' summed, busy when all are. */
  localState(): LocalState {
    const up = this.workers.filter((w) => w.load);
    return {
      load: {
        rooms: this.roomWorker.size,
        participants: this.ledger.participants,
        outputs: up.reduce((n, w) => n + (w.load?.outputs ?? 0), 0),
      },
      rooms: [...this.roomWorker.keys()],
      busy: !this.workers.some((w) => w.ready && !w.busy),
      workers: this.workers.map((w) => ({
        index: w.index,
        cpuCores: Math.round((w.load?.cpuCores ?? 0) * 1000) / 1000,
        rooms: w.load?.rooms.length ?? 0,
        participants: w.load?.participants ?? 0,
        level: w.ready ? (w.load?.level ?? 0) : -1,
      })),
    };
  }

  /**
   * The overload budget is the server's, not a worker's share of it (one worker may use more than
   * its share while another idles): every worker hears the server's CPU, its workers' and main's.
   */
  private shareLoad(): void {
    const now = performance.now();
    const own = process.cpuUsage(this.lastCpu);
    const mainCores = (own.user + own.system) / 1000 / Math.max(1, now - this.lastCpuAt);
    this.lastCpu = process.cpuUsage();
    this.lastCpuAt = now;
    const cpuCores = this.workers.reduce((n, w) => n + (w.load?.cpuCores ?? 0), mainCores);
    for (const w of this.workers) if (w.ready) w.post({ t: "serverLoad", cpuCores });
  }

  private collect(): void {
    for (const w of this.workers) {
      const worker = String(w.index);
      metrics.mediaWorkerUp.set(w.ready ? 1 : 0, { worker });
      metrics.mediaWorkerCpu.set(Math.round((w.load?.cpuCores ?? 0) * 1000) / 1000, { worker });
      metrics.mediaWorkerRooms.set(w.load?.rooms.length ?? 0, { worker });
      metrics.mediaWorkerParticipants.set(w.load?.participants ?? 0, { worker });
      metrics.mediaWorkerLevel.set(w.load?.level ?? 0, { worker });
      metrics.mediaWorkerLoopLag.set(Math.round((w.load?.loopLagMs ?? 0) * 10) / 10, { worker });
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    this.stopCollecting();
    clearInterval(this.loadTimer);
    for (const c of this.calls.values()) {
      clearTimeout(c.timer);
      c.reject(new WorkerCallError(503, "shutting_down", "the server is shutting down"));
    }
    this.calls.clear();
    await Promise.all(
      this.workers.map(async (w) => {
        const p = w.proc;
        if (!p || p.exitCode !== null) return;
        const gone = new Promise<void>((r) => p.once("exit", () => r()));
        p.disconnect();
        const kill = setTimeout(() => p.kill("SIGKILL"), 3000);
        await gone;
        clearTimeout(kill);
      }),
    );
  }
}
