// Reads H.264 frames from an FLV byte stream (ffmpeg `-f flv pipe:1`). FLV tags are length-prefixed,
// so each encoded frame is whole the moment its last byte arrives: no waiting for the next frame's
// start code, as a raw Annex-B stream would need. The AVC sequence header carries SPS and PPS.

export interface FlvVideoFrame {
  /** One access unit, NAL units each prefixed with a 4-byte big-endian length (AVCC). */
  data: Buffer;
  isKeyframe: boolean;
}

export interface AvcConfig {
  sps: Buffer[];
  pps: Buffer[];
  naluLengthSize: number;
}

/** Parses an AVCDecoderConfigurationRecord (ISO 14496-15): NAL length size, SPS and PPS. */
export function parseAvcC(b: Buffer): AvcConfig {
  if (b.length < 7 || b[0] !== 1) throw new Error("not an AVCDecoderConfigurationRecord");
  const naluLengthSize = (b[4]! & 3) + 1;
  let o = 5;
  const read = (count: number): Buffer[] => {
    const out: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      const n = b.readUInt16BE(o);
      out.push(b.subarray(o + 2, o + 2 + n));
      o += 2 + n;
    }
    return out;
  };
  const sps = read(b[o++]! & 0x1f);
  const pps = read(b[o++]!);
  return { sps, pps, naluLengthSize };
}

export class FlvReader {
  private buf: Buffer = Buffer.alloc(0);
  private headerDone = false;
  /** SPS/PPS from the last sequence header. */
  config: AvcConfig | undefined;

  push(chunk: Buffer): FlvVideoFrame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const frames: FlvVideoFrame[] = [];
    if (!this.headerDone) {
      if (this.buf.length < 13) return frames; // 9-byte header + PreviousTagSize0
      if (this.buf.toString("latin1", 0, 3) !== "FLV") throw new Error("not an FLV stream");
      this.buf = this.buf.subarray(this.buf.readUInt32BE(5) + 4);
      this.headerDone = true;
    }
    for (;;) {
      if (this.buf.length < 11) break;
      const type = this.buf[0]! & 0x1f;
      const size = this.buf.readUIntBE(1, 3);
      if (this.buf.length < 11 + size + 4) break;
      const body = this.buf.subarray(11, 11 + size);
      this.buf = this.buf.subarray(11 + size + 4);
      // Video tag, codec 7 (AVC): [frame type + codec][AVCPacketType][composition time x3][data].
      if (type !== 9 || body.length < 5 || (body[0]! & 0x0f) !== 7) continue;
      const data = body.subarray(5);
      if (body[1] === 0) this.config = parseAvcC(data);
      else if (body[1] === 1 && data.length) frames.push({ data: Buffer.from(data), isKeyframe: body[0]! >> 4 === 1 });
    }
    if (this.buf.length === 0) this.buf = Buffer.alloc(0);
    return frames;
  }
}

const START = Buffer.from([0, 0, 0, 1]);

/** AVCC (length-prefixed NAL units) to Annex-B (start codes), with `prefix` NAL units (e.g. SPS, PPS) first. */
export function avccToAnnexB(data: Buffer, naluLengthSize: number, prefix: Buffer[] = []): Buffer {
  const parts: Buffer[] = [];
  for (const nal of prefix) parts.push(START, nal);
  for (let o = 0; o + naluLengthSize <= data.length; ) {
    const n = data.readUIntBE(o, naluLengthSize);
    parts.push(START, data.subarray(o + naluLengthSize, o + naluLengthSize + n));
    o += naluLengthSize + n;
  }
  return Buffer.concat(parts);
}

/** Annex-B (start codes) to its NAL units. */
export function annexBNals(data: Buffer): Buffer[] {
  const nals: Buffer[] = [];
  let start = -1;
  for (let i = 0; i + 2 < data.length; i++) {
    if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1) {
      if (start >= 0) nals.push(data.subarray(start, i > 0 && data[i - 1] === 0 ? i - 1 : i));
      start = i + 3;
      i += 2;
    }
  }
  if (start >= 0 && start < data.length) nals.push(data.subarray(start));
  return nals.filter((n) => n.length > 0);
}

function tag(type: number, timestampMs: number, body: Buffer): Buffer {
  const h = Buffer.alloc(11);
  h[0] = type;
  h.writeUIntBE(body.length, 1, 3);
  h.writeUIntBE(timestampMs & 0xffffff, 4, 3);
  h[7] = (timestampMs >>> 24) & 0xff;
  const prev = Buffer.alloc(4);
  prev.writeUInt32BE(11 + body.length);
  return Buffer.concat([h, body, prev]);
}

/**
 * Writes H.264 access units (Annex-B, SPS and PPS before keyframes) as an FLV stream, each with its
 * own timestamp: how the recorder hands ffmpeg the H.264 composite with exact timing.
 */
export class FlvWriter {
  private headerSent = false;

  /** The bytes for one frame (with the file header and the AVC sequence header before the first keyframe). */
  frame(annexB: Buffer, isKeyframe: boolean, timestampMs: number): Buffer {
    const nals = annexBNals(annexB);
    const out: Buffer[] = [];
    if (!this.headerSent) {
      const sps = nals.find((n) => (n[0]! & 0x1f) === 7);
      const pps = nals.find((n) => (n[0]! & 0x1f) === 8);
      if (!isKeyframe || !sps || !pps) return Buffer.alloc(0);
      out.push(Buffer.from([0x46, 0x4c, 0x56, 1, 1, 0, 0, 0, 9, 0, 0, 0, 0]));
      const avcC = Buffer.concat([
        Buffer.from([1, sps[1]!, sps[2]!, sps[3]!, 0xff, 0xe1]), u16(sps.length), sps, Buffer.from([1]), u16(pps.length), pps,
      ]);
      out.push(tag(9, 0, Buffer.concat([Buffer.from([0x17, 0, 0, 0, 0]), avcC])));
      this.headerSent = true;
    }
    const body = nals.filter((n) => ![7, 8, 9].includes(n[0]! & 0x1f)).flatMap((n) => [u32(n.length), n]);
    out.push(tag(9, timestampMs, Buffer.concat([Buffer.from([isKeyframe ? 0x17 : 0x27, 1, 0, 0, 0]), ...body])));
    return Buffer.concat(out);
  }
}

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
