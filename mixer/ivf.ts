// IVF container framing for VP8 streams piped to/from ffmpeg (`-f ivf`).
// Layout follows libvpx ivfenc/ivfdec: a 32-byte file header, then frames of
// [u32 size][i64 pts][size bytes], everything little-endian.

export interface IvfHeader {
  fourcc: string;
  width: number;
  height: number;
  timebaseDen: number;
  timebaseNum: number;
}

export interface IvfFrame {
  data: Buffer;
  pts: bigint;
  isKeyframe: boolean;
}

export interface IvfFileHeaderOptions {
  width: number;
  height: number;
  /** Codec tag, default "VP80". */
  fourcc?: string;
  /** Timebase denominator (units per second), default 90000 (RTP video clock). */
  timebaseDen?: number;
  /** Timebase numerator, default 1. */
  timebaseNum?: number;
  /** Frame count; 0 (unknown) is fine for pipes, ffmpeg does not need it. */
  frameCount?: number;
}

export const IVF_FILE_HEADER_SIZE = 32;
export const IVF_FRAME_HEADER_SIZE = 12;

export function ivfFileHeader(opts: IvfFileHeaderOptions): Buffer {
  const fourcc = opts.fourcc ?? "VP80";
  if (fourcc.length !== 4 || Buffer.byteLength(fourcc, "latin1") !== 4) {
    throw new RangeError(`IVF fourcc must be 4 characters, got ${JSON.stringify(fourcc)}`);
  }
  const b = Buffer.alloc(IVF_FILE_HEADER_SIZE);
  b.write("DKIF", 0, "latin1");
  b.writeUInt16LE(0, 4); // version
  b.writeUInt16LE(IVF_FILE_HEADER_SIZE, 6);
  b.write(fourcc, 8, "latin1");
  // writeUInt* throw on out-of-range values, which is what we want for bad dims.
  b.writeUInt16LE(opts.width, 12);
  b.writeUInt16LE(opts.height, 14);
  b.writeUInt32LE(opts.timebaseDen ?? 90000, 16);
  b.writeUInt32LE(opts.timebaseNum ?? 1, 20);
  b.writeUInt32LE(opts.frameCount ?? 0, 24);
  // bytes 28..31 unused, left zero
  return b;
}

/** One IVF frame: 12-byte header followed by a copy of `data`. */
export function ivfFrame(data: Buffer, pts: bigint | number): Buffer {
  const b = Buffer.allocUnsafe(IVF_FRAME_HEADER_SIZE + data.length);
  b.writeUInt32LE(data.length, 0);
  b.writeBigInt64LE(BigInt(pts), 4); // BigInt() throws on fractional numbers
  data.copy(b, IVF_FRAME_HEADER_SIZE);
  return b;
}

/** VP8 frame tag: bit 0 of the first byte is 0 for keyframes (RFC 6386 §9.1). */
export function isVp8Keyframe(data: Buffer): boolean {
  return data.length > 0 && (data[0] & 1) === 0;
}

/**
 * FIFO of pushed chunks. Reads return views into a chunk when the bytes lie in
 * one chunk and copy exactly once when they span chunks, so feeding many tiny
 * chunks stays linear (no re-concatenating the backlog on every push).
 * Returned views alias the caller's chunks: don't mutate chunks after pushing.
 * Shared with the Ogg reader.
 */
export class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0;
  length = 0;

  push(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }

  read(n: number): Buffer | undefined {
    if (n > this.length) return undefined;
    if (n === 0) return Buffer.alloc(0);
    this.length -= n;
    const first = this.chunks[this.head];
    if (first.length >= n) {
      this.consumeFront(first, n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[this.head];
      const take = Math.min(c.length, n - off);
      c.copy(out, off, 0, take);
      off += take;
      this.consumeFront(c, take);
    }
    return out;
  }

  private consumeFront(c: Buffer, take: number): void {
    if (take < c.length) {
      this.chunks[this.head] = c.subarray(take);
      return;
    }
    this.head++;
    // Advance an index instead of shift() (O(queue) each); compact occasionally.
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }
}

/** Incremental IVF parser: push arbitrary chunks, get complete frames back. */
export class IvfReader {
  header: IvfHeader | undefined;
  private q = new ByteQueue();
  private skip = 0; // header bytes beyond 32 (header length field > 32)
  private pending: { size: number; pts: bigint } | undefined;

  push(chunk: Buffer): IvfFrame[] {
    this.q.push(chunk);
    const out: IvfFrame[] = [];
    if (!this.header) {
      const h = this.q.read(IVF_FILE_HEADER_SIZE);
      if (!h) return out;
      this.header = parseHeader(h);
      this.skip = Math.max(0, h.readUInt16LE(6) - IVF_FILE_HEADER_SIZE);
    }
    for (;;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, this.q.length);
        this.q.read(n);
        this.skip -= n;
        if (this.skip > 0) break;
      }
      if (!this.pending) {
        const fh = this.q.read(IVF_FRAME_HEADER_SIZE);
        if (!fh) break;
        this.pending = { size: fh.readUInt32LE(0), pts: fh.readBigInt64LE(4) };
      }
      const data = this.q.read(this.pending.size);
      if (!data) break;
      out.push({ data, pts: this.pending.pts, isKeyframe: isVp8Keyframe(data) });
      this.pending = undefined;
    }
    return out;
  }
}

function parseHeader(h: Buffer): IvfHeader {
  const sig = h.toString("latin1", 0, 4);
  if (sig !== "DKIF") throw new Error(`not an IVF stream (signature ${JSON.stringify(sig)})`);
  return {
    fourcc: h.toString("latin1", 8, 12),
    width: h.readUInt16LE(12),
    height: h.readUInt16LE(14),
    timebaseDen: h.readUInt32LE(16),
    timebaseNum: h.readUInt32LE(20),
  };
}
