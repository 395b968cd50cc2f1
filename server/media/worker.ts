// A media worker: one process holding some of the server's rooms (their werift peers, compositor,
// audio mixer, encoders), forked by main (./MediaWorkers.ts) and spoken to only over the channel
// in ./channel.ts. It has no HTTP of its own: main carries every client's signaling here and every
// reply back. A crash here (native code in the encoders included) ends only this worker's rooms;
// main tells their clients, who rejoin, and places them again.
import { killFfmpegOnExit, setFfmpegSpawning } from "../../mixer/FfmpegProcess.ts";
import { logger, setLogLevel } from "../../telemetry/log.ts";
import { metricsJson } from "../../telemetry/metrics.ts";
import { watchRejections } from "../../telemetry/rejections.ts";
import type { Config } from "../config.ts";
import { LOAD_SAMPLE_MS } from "../overload.ts";
import { roomsRequest } from "../roomsApi.ts";
import { Rooms } from "../Rooms.ts";
import { SignalingSession } from "../signaling/session.ts";
import { RecordingError, Recordings } from "../recordings/Recordings.ts";
import type { RecordingMeta } from "../recordings/RecordingStore.ts";
import type { MainToWorker, WorkerCall, WorkerToMain } from "./channel.ts";
import { WorkerCallError } from "./channel.ts";

const log = logger("media-worker");

function post(m: WorkerToMain): void {
  if (process.connected) process.send!(m);
}

interface Held {
  session: SignalingSession;
  /** Messages are handled one at a time, in order, as on a transport. */
  chain: Promise<void>;
}

class MediaWorker {
  private readonly sessions = new Map<number, Held>();
  private readonly rooms: Rooms;
  private readonly recordings: Recordings;
  private readonly loadTimer: NodeJS.Timeout;
  private readonly asks = new Map<number, (refused: string | undefined) => void>();
  private nextAsk = 1;

  constructor(
    private readonly config: Config,
    private readonly index: number,
    workers: number,
    node: RecordingMeta["node"] | undefined,
  ) {
    this.rooms = new Rooms(config, undefined, 1 / workers);
    this.recordings = new Recordings(this.rooms, config, undefined, {
      acquireSlot: (room) =>
        new Promise((resolve) => {
          const id = this.nextAsk++;
          this.asks.set(id, resolve);
          post({ t: "ask", id, room });
        }),
      slotChanged: (room, id) => post({ t: "recording", room, id }),
      enqueue: (recording) => post({ t: "enqueue", recording }),
      node,
    });
    this.loadTimer = setInterval(() => this.reportLoad(), LOAD_SAMPLE_MS);
  }

  init(): Promise<void> {
    return this.recordings.init();
  }

  private reportLoad(): void {
    const s = this.rooms.load.last;
    const state = this.rooms.localState();
    post({
      t: "load",
      load: {
        cpuCores: s.cpuCores,
        loopLagMs: s.loopLagMs,
        tickLateMs: s.tickLateMs,
        level: this.rooms.load.level,
        rooms: state.rooms,
        participants: state.load.participants,
        outputs: state.load.outputs,
      },
    });
  }

  handle(m: MainToWorker): void {
    switch (m.t) {
      case "open": {
        const session = new SignalingSession(this.rooms, this.config, (msg) => post({ t: "send", sid: m.sid, msg }), m.address, this.recordings);
        session.seatChanged = (participant, room) => post({ t: "seat", sid: m.sid, participant: participant ?? null, room: room ?? null });
        this.sessions.set(m.sid, { session, chain: Promise.resolve() });
        return;
      }
      case "message": {
        const h = this.sessions.get(m.sid);
        if (!h) return;
        h.chain = h.chain.then(() => h.session.receive(m.raw, true));
        if (m.join) h.chain = h.chain.then(() => post({ t: "joinDone", sid: m.sid }));
        return;
      }
      case "close": {
        const h = this.sessions.get(m.sid);
        if (!h) return;
        this.sessions.delete(m.sid);
        h.chain = h.chain.then(() => h.session.leave(m.reason));
        return;
      }
      case "call":
        void this.call(m.call).then(
          (value) => post({ t: "reply", id: m.id, ok: true, value }),
          (err: Error) => {
            const known = err instanceof WorkerCallError || err instanceof RecordingError;
            const e = known ? (err as WorkerCallError) : new WorkerCallError(500, "internal", err.message);
            if (!known) log.error("worker call failed", { op: m.call.op, error: err.message, stack: err.stack });
            post({ t: "reply", id: m.id, ok: false, status: e.status, code: e.code, message: e.message });
          },
        );
        return;
      case "serverLoad":
        this.rooms.load.setServerCpu(m.cpuCores);
        return;
      case "answer":
        this.asks.get(m.id)?.(m.refused);
        this.asks.delete(m.id);
        return;
      case "init":
        return;
    }
  }

  private async call(c: WorkerCall): Promise<unknown> {
    switch (c.op) {
      case "rooms":
        return roomsRequest(this.rooms, c.method, c.path, c.body) ?? null;
      case "revoke":
        return this.rooms.removeTokenHolders(c.tokenId);
      case "metrics":
        return metricsJson();
      case "record":
        if (c.action === "current") return this.recordings.current(c.room) ?? null;
        return c.action === "start" ? this.recordings.start(c.room) : this.recordings.stop(c.room);
      case "closeRecordings":
        await this.recordings.close();
        return null;
      case "spin": {
        if (process.env.MEDIA_WORKER_TEST_HOOKS !== "1") throw new WorkerCallError(403, "forbidden", "test hooks are off");
        const until = performance.now() + c.ms;
        // Saturates this worker's loop in slices, as a room's work gone wild would.
        const spin = () => {
          const end = Math.min(until, performance.now() + 200);
          while (performance.now() < end);
          if (performance.now() < until) setImmediate(spin);
        };
        spin();
        return { pid: process.pid, index: this.index };
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.loadTimer);
    for (const resolve of this.asks.values()) resolve("the server is shutting down");
    await this.recordings.close().catch(() => {});
    this.rooms.close();
  }
}

/** Runs this process as media worker (called when forked by main). */
export function runMediaWorker(): void {
  let worker: MediaWorker | undefined;
  process.on("message", (m: MainToWorker) => {
    if (m.t === "init") {
      const config: Config = { ...m.config, trustedProxies: () => false };
      setLogLevel(config.logLevel);
      killFfmpegOnExit();
      watchRejections();
      setFfmpegSpawning(config.ffmpegSpawn);
      const w = new MediaWorker(config, m.index, m.workers, m.node);
      worker = w;
      void w.init().then(
        () => {
          post({ t: "ready", pid: process.pid });
          log.debug("media worker ready", { index: m.index, pid: process.pid });
        },
        (err: Error) => {
          log.error("media worker could not start", { index: m.index, error: err.message });
          process.exit(1);
        },
      );
      return;
    }
    worker?.handle(m);
  });
  // Main went away (it crashed, or closed us): nothing here is reachable any more.
  process.on("disconnect", () => {
    void (worker?.close() ?? Promise.resolve()).finally(() => process.exit(0));
  });
  // Ctrl-C in a terminal, systemd's default KillMode and `kill -- -<pgid>` signal the whole process
  // group, workers included. Main owns the shutdown (it tells every client to reconnect, then closes
  // its workers), so a worker keeps its rooms until then; if main does not close it in time, it
  // closes itself.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      log.info("signalled: leaving the shutdown to the server, closing by itself if it has not in time", { signal, graceMs: SIGNAL_GRACE_MS });
      setTimeout(() => void (worker?.close() ?? Promise.resolve()).finally(() => process.exit(0)), SIGNAL_GRACE_MS).unref();
    });
  }
}

/** How long a signalled worker waits for main to close it. */
const SIGNAL_GRACE_MS = 10_000;

if (process.send && process.env.MIXROOM_MEDIA_WORKER === "1") runMediaWorker();
