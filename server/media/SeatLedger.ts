// The caps that hold server-wide when rooms run in media workers (each worker's Rooms checks them
// only for its own rooms): participants, rooms, joins and rooms per address. A seat is reserved when
// main relays a join, and kept until the worker seats the session or refuses it, then while seated.
import { AdmissionError, KeyedQuota } from "../admission.ts";
import type { Config } from "../config.ts";

/** Seats and reservations across workers, for the caps that hold server-wide (Rooms checks them per worker). */
export class SeatLedger<S extends { readonly address: string }> {
  /** Per session: its room and address, seated or reserved (a join on its way to a worker). */
  private readonly seats = new Map<S, { room: string; address: string; release: () => void }>();
  private readonly joins: KeyedQuota;

  constructor(
    private readonly config: Config,
    /** Whether a room is open (or placed) on some worker, and how many are. */
    private readonly roomOpen: (room: string) => boolean,
    private readonly openRooms: () => number,
  ) {
    this.joins = new KeyedQuota(() => config.maxJoinsPerIp);
  }

  /** Reserves a seat for `s` in `room`, or throws the AdmissionError Rooms.join would. */
  reserve(s: S, room: string): void {
    const c = this.config;
    this.release(s);
    if (this.seats.size >= c.maxParticipantsTotal) throw new AdmissionError("server_full", `the server is full (${c.maxParticipantsTotal} participants)`);
    const mine = new Set<string>();
    for (const v of this.seats.values()) if (v.address === s.address) mine.add(v.room);
    if (!mine.has(room) && mine.size >= c.maxRoomsPerIp) {
      throw new AdmissionError("too_many_joins", `one address may be in at most ${c.maxRoomsPerIp} rooms at once (MAX_ROOMS_PER_IP)`);
    }
    if (!this.roomOpen(room) && this.openRooms() >= c.maxRooms) throw new AdmissionError("server_full", `the server has its maximum of ${c.maxRooms} rooms`);
    const release = this.joins.take(s.address);
    if (!release) throw new AdmissionError("too_many_joins", `one address may hold at most ${c.maxJoinsPerIp} participants at once (MAX_JOINS_PER_IP)`);
    this.seats.set(s, { room, address: s.address, release });
  }

  release(s: S): void {
    const v = this.seats.get(s);
    if (!v) return;
    v.release();
    this.seats.delete(s);
  }

  get participants(): number {
    return this.seats.size;
  }
}
