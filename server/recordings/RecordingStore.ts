// The recordings directory: one folder per recording holding its media and `recording.json`.
// The metadata file is the source of truth for status and progress, so a server and workers on
// other machines that share the directory agree on it; every write is atomic (tmp + rename).
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";

export type RecordingStatus = "recording" | "pending" | "processing" | "done" | "failed";

export interface ParticipantEvent {
  /** ms since the recording started. */
  offsetMs: number;
  event: "present" | "joined" | "left";
  id: string;
  name: string;
}

export interface RecordingFile {
  name: string;
  bytes: number;
  type: string;
}

export interface RecordingMeta {
  id: string;
  room: string;
  status: RecordingStatus;
  startedAt: string;
  stoppedAt?: string;
  /** Why recording ended: an API/client stop, the room emptying, a server shutdown, a crash found at
   * startup, or free disk space falling below RECORDINGS_MIN_FREE_MB. */
  endedBy?: "stop" | "room-empty" | "shutdown" | "crash" | "disk_low";
  /** Live Matroska files in order; more than one when the recorder child was replaced. */
  parts: string[];
  participants: ParticipantEvent[];
  /** The composite as recorded; codec absent = vp8 (recordings made before H.264). */
  output: { width: number; height: number; fps: number; codec?: "vp8" | "h264" };
  /** The node recording it (several nodes): another node finalizes it only once that one is gone. */
  node?: { id: string; boot: string; cluster: string };
  /** Post-processing progress, 0..1. */
  progress: number;
  attempts: number;
  error?: string;
  /** Seconds of media in the finished WebM. */
  duration?: number;
  /** Bytes of the finished files together. */
  size?: number;
  files?: RecordingFile[];
  finishedAt?: string;
}

export class BadNameError extends Error {}

const META = "recording.json";
const ID_RE = /^[A-Za-z0-9_-]{1,120}$/;
/** Names a download may ask for: one path segment of plain characters, no dot-dot. */
const FILE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$/;

export function newRecordingId(room: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  return `${room.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64)}-${stamp}-${randomBytes(3).toString("hex")}`;
}

export class RecordingStore {
  /** Read-modify-writes of one recording run one after another (progress vs "done" must not cross). */
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(readonly root: string) {}

  async init(): Promise<void> {
    await fs.mkdir(this.root, { recursive: true });
  }

  dirOf(id: string): string {
    if (!ID_RE.test(id)) throw new BadNameError(`"${id.slice(0, 60)}" is not a recording id`);
    return path.join(this.root, id);
  }

  /** Path of a file inside a recording's folder; throws BadNameError for anything that could leave it. */
  filePath(id: string, name: string): string {
    if (!FILE_RE.test(name) || name.includes("..")) throw new BadNameError(`"${name.slice(0, 60)}" is not a file name`);
    return path.join(this.dirOf(id), name);
  }

  async create(meta: RecordingMeta): Promise<void> {
    await fs.mkdir(this.dirOf(meta.id), { recursive: true });
    await this.write(meta);
  }

  async read(id: string): Promise<RecordingMeta | undefined> {
    let text: string;
    try {
      text = await fs.readFile(path.join(this.dirOf(id), META), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    return JSON.parse(text) as RecordingMeta;
  }

  async write(meta: RecordingMeta): Promise<void> {
    const file = path.join(this.dirOf(meta.id), META);
    const tmp = `${file}.${process.pid}.${randomBytes(3).toString("hex")}.tmp`;
    await fs.writeFile(tmp, JSON.stringify(meta, null, 2));
    await fs.rename(tmp, file);
  }

  /** Read-modify-write; returns the new metadata, or undefined when the recording is gone. */
  update(id: string, change: (m: RecordingMeta) => void): Promise<RecordingMeta | undefined> {
    const run = async () => {
      const meta = await this.read(id);
      if (!meta) return undefined;
      change(meta);
      await this.write(meta);
      return meta;
    };
    const next = (this.chains.get(id) ?? Promise.resolve()).then(run, run);
    const tail = next.catch(() => {});
    this.chains.set(id, tail);
    void tail.then(() => this.chains.get(id) === tail && this.chains.delete(id));
    return next;
  }

  /** Every recording in the directory, newest first. Folders without readable metadata are skipped. */
  async list(): Promise<RecordingMeta[]> {
    let names: string[];
    try {
      names = await fs.readdir(this.root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    const metas = await Promise.all(
      names.filter((n) => ID_RE.test(n)).map((n) => this.read(n).catch(() => undefined)),
    );
    return metas.filter((m): m is RecordingMeta => !!m).sort((a, b) => b.startedAt.localeCompare(a.startedAt));
  }

  async remove(id: string): Promise<void> {
    await fs.rm(this.dirOf(id), { recursive: true, force: true });
  }
}
