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
import { SignalingSession, type RecordingControl } from "../signaling/session.ts";
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
  private readonly loadTimer: NodeJS.Timeout;

  constructor(
    private readonly config: Config,
    private readonly index: number,
    private readonly recording: RecordingControl | undefined,
  ) {
    this.rooms = new Rooms(config);
    this.loadTimer = setInterval(() => this.reportLoad(), LOAD_SAMPLE_MS);
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
        const session = new SignalingSession(this.rooms, this.config, (msg) => post({ t: "send", sid: m.sid, msg }), m.address, this.recording);
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
      case "shutdown":
        for (const h of this.sessions.values()) h.session.notifyShutdown(m.reconnectAfterMs);
        return;
      case "call":
        void this.call(m.call).then(
          (value) => post({ t: "reply", id: m.id, ok: true, value }),
          (err: Error) => {
            const e = err instanceof WorkerCallError ? err : new WorkerCallError(500, "internal", err.message);
            if (!(err instanceof WorkerCallError)) log.error("worker call failed", { op: m.call.op, error: err.message, stack: err.stack });
            post({ t: "reply", id: m.id, ok: false, status: e.status, code: e.code, message: e.message });
          },
        );
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
        throw new WorkerCallError(501, "not_implemented", "recording is not available in media workers yet");
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

  close(): void {
    clearInterval(this.loadTimer);
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
      worker = new MediaWorker(config, m.index, undefined);
      post({ t: "ready", pid: process.pid });
      log.debug("media worker ready", { index: m.index, pid: process.pid });
      return;
    }
    worker?.handle(m);
  });
  // Main went away (it crashed, or closed us): nothing here is reachable any more.
  process.on("disconnect", () => {
    worker?.close();
    process.exit(0);
  });
}

if (process.send && process.env.MIXROOM_MEDIA_WORKER === "1") runMediaWorker();
