// The registry of live rooms: created on first join, dropped when empty.
import type { Config } from "./config.ts";
import { metrics } from "./metrics.ts";
import { Room } from "./Room.ts";

/** What signaling may ask of recording (the page's record button). */
export interface RecordingControl {
  start(room: string): Promise<unknown>;
  stop(room: string): Promise<unknown>;
}

export class Rooms {
  private readonly rooms = new Map<string, Room>();
  /** Set by the server once recording is up. */
  recordingControl: RecordingControl | undefined;

  constructor(private readonly config: Config) {}

  getOrCreate(id: string): Room {
    let room = this.rooms.get(id);
    if (!room) {
      room = new Room(id, this.config);
      const r = room;
      room.once("empty", () => {
        if (this.rooms.get(id) === r) this.rooms.delete(id);
        metrics.rooms.set(this.rooms.size);
      });
      this.rooms.set(id, room);
      metrics.rooms.set(this.rooms.size);
    }
    return room;
  }

  get(id: string): Room | undefined {
    return this.rooms.get(id);
  }

  all(): Room[] {
    return [...this.rooms.values()];
  }

  close(): void {
    for (const r of this.rooms.values()) r.close();
    this.rooms.clear();
  }
}
