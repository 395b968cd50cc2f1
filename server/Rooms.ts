// The registry of live rooms: created on first join, dropped when empty. It is also where the
// server-wide and per-address admission caps are checked, before a participant gets a seat.
import { Revocations } from "./revocations.ts";
import { IngressBudgets } from "./iceGate.ts";
import { DecodeBudgets } from "../mixer/decodeBudget.ts";
import { AdmissionError, Concurrency, KeyedQuota } from "./admission.ts";
export { AdmissionError } from "./admission.ts";
import type { Cluster, LocalState } from "./cluster/Cluster.ts";
import type { Config } from "./config.ts";
import { addCollector, metrics } from "../telemetry/metrics.ts";
import type { Participant } from "./Participant.ts";
import { Room, type SeatOptions } from "./Room.ts";
import { LoadMonitor } from "./LoadMonitor.ts";
import { LEVEL_FPS } from "./overload.ts";

export class Rooms {
  private readonly rooms = new Map<string, Room>();
  private readonly joinsByAddress: KeyedQuota;
  /** Per address: the rooms it sits in, and how many seats in each. */
  private readonly roomsByAddress = new Map<string, Map<string, number>>();
  private participantsTotal = 0;
  /** werift's offer handling is CPU-bound: a few at a time server-wide, a short queue, then `busy`. */
  readonly offers: Concurrency;

  private readonly stopCollecting: () => void;

  /** Decode pools shared by every room: per client address, and the server's. */
  private readonly decode: DecodeBudgets;
  private readonly ingress: IngressBudgets;

  constructor(
    private readonly config: Config,
    /** Several nodes (REDIS_URL + NODE_URL): where rooms are placed, and told when one closes here. */
    readonly cluster?: Cluster,
    /** The share of the server these rooms are (a media worker's: 1 / workers), for the overload policy. */
    loadShare = 1,
  ) {
    this.joinsByAddress = new KeyedQuota(() => config.maxJoinsPerIp);
    this.decode = new DecodeBudgets(config.decode, config.decodeAddressPixelsPerSecond, config.decodeServerPixelsPerSecond);
    this.ingress = new IngressBudgets(config.ingressKbps * 125, config.decodeAddressShare);
    // Receivers per composite output (codec@rung, e.g. vp8@0), summed over rooms at each scrape.
    this.stopCollecting = addCollector(() => {
      metrics.outputReceivers.reset();
      metrics.outputSendJitter.reset();
      const worst = new Map<string, number>(); // the send jitter of an output: the worst room's
      for (const r of this.rooms.values()) {
        for (const [output, n] of Object.entries(r.currentMixer?.outputsInUse ?? {})) metrics.outputReceivers.inc({ output }, n);
        for (const [output, ms] of Object.entries(r.currentMixer?.sendJitterMs ?? {})) worst.set(output, Math.max(worst.get(output) ?? 0, ms));
      }
      for (const [output, ms] of worst) metrics.outputSendJitter.set(Math.round(ms * 10) / 10, { output });
    });
    // The overload policy: level 1 refuses joins here, levels 2 and 3 lower every composite's frame rate.
    this.load = new LoadMonitor(config.overloadCpu, undefined, loadShare);
    this.load.on("level", () => {
      for (const r of this.rooms.values()) r.setFrameRate(this.fpsCap);
    });
    this.offers = new Concurrency(() => config.maxConcurrentOffers, () => config.maxConcurrentOffers * 4);
    this.revocations = new Revocations(cluster?.revocationStore(), (tokenId) => this.removeTokenHolders(tokenId));
  }

  /** Removes a revoked token's holders from every room here; how many. */
  removeTokenHolders(tokenId: string): number {
    let n = 0;
    for (const r of this.rooms.values()) n += r.kickToken(tokenId, "your room token was revoked");
    return n;
  }

  /** Room tokens revoked before they expire (checked at every join; their holders are removed). */
  readonly revocations: Revocations;

  readonly load: LoadMonitor;

  private get fpsCap(): number | undefined {
    return LEVEL_FPS[this.load.level];
  }

  /** Over its load budget (overload level 1 and up): this node takes no one new. */
  get busy(): boolean {
    return this.load.level >= 1;
  }

  /** Seats a participant from `address` in room `roomId`, creating the room if needed; throws AdmissionError. */
  join(roomId: string, name: string, address: string, seat: SeatOptions = {}): Participant {
    const c = this.config;
    if (this.busy) {
      metrics.busyRefusals.inc();
      throw new AdmissionError("server_busy", "the server is overloaded just now; try again in a moment");
    }
    if (this.participantsTotal >= c.maxParticipantsTotal) throw new AdmissionError("server_full", `the server is full (${c.maxParticipantsTotal} participants)`);
    const mine = this.roomsByAddress.get(address);
    if (!mine?.has(roomId) && (mine?.size ?? 0) >= c.maxRoomsPerIp) {
      throw new AdmissionError("too_many_joins", `one address may be in at most ${c.maxRoomsPerIp} rooms at once (MAX_ROOMS_PER_IP)`);
    }
    if (!this.rooms.has(roomId) && this.rooms.size >= c.maxRooms) throw new AdmissionError("server_full", `the server has its maximum of ${c.maxRooms} rooms`);
    const release = this.joinsByAddress.take(address);
    if (!release) throw new AdmissionError("too_many_joins", `one address may hold at most ${c.maxJoinsPerIp} participants at once (MAX_JOINS_PER_IP)`);
    const room = this.getOrCreate(roomId);
    let p: Participant;
    try {
      p = room.join(name, { ...seat, address });
    } catch (err) {
      release();
      if (room.size === 0) this.drop(room);
      throw err;
    }
    this.participantsTotal++;
    const seats = mine ?? new Map<string, number>();
    seats.set(roomId, (seats.get(roomId) ?? 0) + 1);
    this.roomsByAddress.set(address, seats);
    p.once("close", () => {
      release();
      this.participantsTotal--;
      const left = (seats.get(roomId) ?? 1) - 1;
      if (left > 0) seats.set(roomId, left);
      else seats.delete(roomId);
      if (!seats.size) this.roomsByAddress.delete(address);
    });
    return p;
  }

  private getOrCreate(id: string): Room {
    let room = this.rooms.get(id);
    if (!room) {
      room = new Room(id, this.config, this.decode, this.ingress);
      room.setFrameRate(this.fpsCap);
      const r = room;
      room.once("empty", () => this.drop(r));
      this.rooms.set(id, room);
      metrics.rooms.set(this.rooms.size);
    }
    return room;
  }

  private drop(room: Room): void {
    if (this.rooms.get(room.id) !== room) return;
    this.rooms.delete(room.id);
    metrics.rooms.set(this.rooms.size);
    this.cluster?.release(room.id);
  }

  /** This node's load and rooms, for its heartbeat in the registry. */
  localState(): LocalState {
    const outputs = this.all().reduce((n, r) => n + Object.keys(r.currentMixer?.outputsInUse ?? {}).length, 0);
    return { load: { rooms: this.rooms.size, participants: this.participantsTotal, outputs }, rooms: [...this.rooms.keys()], busy: this.busy };
  }

  get(id: string): Room | undefined {
    return this.rooms.get(id);
  }

  all(): Room[] {
    return [...this.rooms.values()];
  }

  close(): void {
    this.stopCollecting();
    this.load.close();
    for (const r of this.rooms.values()) r.close();
    this.rooms.clear();
  }
}
