// Ogg framing for Opus (RFC 3533 pages, RFC 7845 Ogg Opus mapping): wraps Opus
// RTP payloads for an ffmpeg decoder and unwraps ffmpeg's libopus output.

import { ByteQueue } from "./ivf.ts";

export interface OggPacket {
  data: Buffer;
  /** Page granule for the last packet completed on a page, -1n for the others (Ogg rule). */
  granule: bigint;
  bos: boolean;
  eos: boolean;
}

export interface OggOpusWriterOptions {
  /** Stream serial; random by default as RFC 3533 recommends. */
  serial?: number;
  /** 1 or 2 (channel mapping family 0). Default 1. */
  channels?: number;
  /** Informational original rate for OpusHead. Default 48000. */
  inputSampleRate?: number;
  /** Samples (48 kHz) the decoder drops at the start. Default 0. */
  preSkip?: number;
}

const FLAG_CONTINUED = 0x01;
const FLAG_BOS = 0x02;
const FLAG_EOS = 0x04;
const PAGE_HEADER_SIZE = 27;
/** 255 lacing values, the last one < 255: the biggest packet one page can end. */
export const OGG_MAX_SINGLE_PAGE_PACKET = 254 * 255 + 254;

// CRC-32, poly 0x04c11db7, MSB-first, init 0, no final xor (RFC 3533 §6).
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let k = 0; k < 8; k++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    t[i] = r >>> 0;
  }
  return t;
})();

function crcUpdate(crc: number, buf: Uint8Array): number {
  for (let i = 0; i < buf.length; i++) {
    crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ buf[i]) & 0xff]) >>> 0;
  }
  return crc;
}

/** Ogg CRC of `buf` as given; for a page, zero bytes 22..25 (the checksum field) first. */
export function oggCrc32(buf: Buffer): number {
  return crcUpdate(0, buf);
}

function buildPage(flags: number, granule: bigint, serial: number, seq: number, packet: Buffer): Buffer {
  if (packet.length > OGG_MAX_SINGLE_PAGE_PACKET) {
    throw new RangeError(`packet of ${packet.length} bytes does not fit in one Ogg page`);
  }
  // n full 255-segments plus a terminating segment < 255 (0 when length % 255 == 0).
  const segs = Math.floor(packet.length / 255) + 1;
  const hdr = PAGE_HEADER_SIZE + segs;
  const page = Buffer.allocUnsafe(hdr + packet.length);
  page.write("OggS", 0, "latin1");
  page[4] = 0; // version
  page[5] = flags;
  page.writeBigInt64LE(granule, 6);
  page.writeUInt32LE(serial >>> 0, 14);
  page.writeUInt32LE(seq >>> 0, 18);
  page.writeUInt32LE(0, 22); // checksum is computed with this field zeroed
  page[26] = segs;
  page.fill(255, PAGE_HEADER_SIZE, hdr - 1);
  page[hdr - 1] = packet.length % 255;
  packet.copy(page, hdr);
  page.writeUInt32LE(oggCrc32(page), 22);
  return page;
}

/**
 * Writes a mono/stereo Ogg Opus stream one packet per page, so each RTP
 * payload can be flushed to ffmpeg immediately. Stateful: call headers()
 * first, then packet() in order (page sequence numbers follow call order).
 */
export class OggOpusWriter {
  readonly serial: number;
  private readonly channels: number;
  private readonly inputSampleRate: number;
  private readonly preSkip: number;
  private seq = 0;
  private granule = 0n;

  constructor(opts: OggOpusWriterOptions = {}) {
    this.serial = (opts.serial ?? Math.floor(Math.random() * 0x1_0000_0000)) >>> 0;
    this.channels = opts.channels ?? 1;
    if (this.channels !== 1 && this.channels !== 2) {
      throw new RangeError("OggOpusWriter supports 1 or 2 channels (mapping family 0)");
    }
    this.inputSampleRate = opts.inputSampleRate ?? 48000;
    this.preSkip = opts.preSkip ?? 0;
  }

  /** OpusHead page (BOS) followed by the OpusTags page. */
  headers(): Buffer {
    const head = Buffer.alloc(19);
    head.write("OpusHead", 0, "latin1");
    head[8] = 1; // version
    head[9] = this.channels;
    head.writeUInt16LE(this.preSkip, 10);
    head.writeUInt32LE(this.inputSampleRate, 12);
    head.writeInt16LE(0, 16); // output gain
    head[18] = 0; // channel mapping family
    const vendor = Buffer.from("mixroom", "utf8");
    const tags = Buffer.alloc(8 + 4 + vendor.length + 4);
    tags.write("OpusTags", 0, "latin1");
    tags.writeUInt32LE(vendor.length, 8);
    vendor.copy(tags, 12);
    tags.writeUInt32LE(0, 12 + vendor.length); // no user comments
    return Buffer.concat([this.page(FLAG_BOS, 0n, head), this.page(0, 0n, tags)]);
  }

  /** One page holding exactly `data`; granule advances by `samples` (48 kHz). */
  packet(data: Buffer, samples: number, eos = false): Buffer {
    if (!Number.isInteger(samples) || samples < 0) throw new RangeError(`bad sample count ${samples}`);
    const granule = this.granule + BigInt(samples);
    const page = this.page(eos ? FLAG_EOS : 0, granule, data); // throws before state changes
    this.granule = granule;
    return page;
  }

  private page(flags: number, granule: bigint, data: Buffer): Buffer {
    const p = buildPage(flags, granule, this.serial, this.seq, data);
    this.seq = (this.seq + 1) >>> 0;
    return p;
  }
}

const ZERO4 = new Uint8Array(4);

/**
 * Incremental Ogg page parser yielding whole packets. Assumes one logical
 * stream (what ffmpeg's pipe output is). Throws on a bad capture pattern or
 * CRC: ffmpeg pipes are never lossy, so that means a framing bug upstream.
 */
export class OggPacketReader {
  private q = new ByteQueue();
  private hdr: Buffer | undefined;
  private lacing: Buffer | undefined;
  private bodyLen = 0;
  private partial: Buffer[] = []; // fragments of a packet continuing onto the next page

  push(chunk: Buffer): OggPacket[] {
    this.q.push(chunk);
    const out: OggPacket[] = [];
    for (;;) {
      if (!this.hdr) {
        const h = this.q.read(PAGE_HEADER_SIZE);
        if (!h) break;
        if (h.toString("latin1", 0, 4) !== "OggS" || h[4] !== 0) throw new Error("bad Ogg page header");
        this.hdr = h;
      }
      if (!this.lacing) {
        const l = this.q.read(this.hdr[26]);
        if (!l) break;
        this.lacing = l;
        this.bodyLen = l.reduce((a, v) => a + v, 0);
      }
      const body = this.q.read(this.bodyLen);
      if (!body) break;
      const { hdr, lacing } = this;
      this.hdr = this.lacing = undefined; // reset first so a CRC throw leaves the reader at the next page
      this.onPage(hdr, lacing, body, out);
    }
    return out;
  }

  private onPage(hdr: Buffer, lacing: Buffer, body: Buffer, out: OggPacket[]): void {
    let crc = crcUpdate(crcUpdate(crcUpdate(0, hdr.subarray(0, 22)), ZERO4), hdr.subarray(26));
    crc = crcUpdate(crcUpdate(crc, lacing), body);
    if (crc !== hdr.readUInt32LE(22)) throw new Error("Ogg page CRC mismatch");

    const flags = hdr[5];
    const continued = (flags & FLAG_CONTINUED) !== 0;
    // A fresh page drops a dangling fragment; a continuation with nothing to
    // continue (joined mid-stream) has its leading fragment skipped.
    if (!continued) this.partial = [];
    let skipping = continued && this.partial.length === 0;
    const done: Buffer[] = [];
    let start = 0;
    let pos = 0;
    for (const seg of lacing) {
      pos += seg;
      if (seg === 255) continue;
      const piece = body.subarray(start, pos);
      start = pos;
      if (skipping) {
        skipping = false;
      } else if (this.partial.length > 0) {
        this.partial.push(piece);
        done.push(Buffer.concat(this.partial));
        this.partial = [];
      } else {
        done.push(piece);
      }
    }
    if (lacing.length > 0 && lacing[lacing.length - 1] === 255 && !skipping) {
      this.partial.push(body.subarray(start)); // unterminated: continues on next page
    }

    const granule = hdr.readBigInt64LE(6);
    done.forEach((data, i) => {
      const last = i === done.length - 1;
      out.push({
        data,
        granule: last ? granule : -1n,
        // BOS pages never start with a continuation, so the first packet began here.
        bos: i === 0 && (flags & FLAG_BOS) !== 0,
        eos: last && (flags & FLAG_EOS) !== 0,
      });
    });
  }
}

/** True for the "OpusHead"/"OpusTags" header packets (RFC 7845 §5). */
export function isOpusHeaderPacket(p: Buffer): boolean {
  if (p.length < 8) return false;
  const magic = p.toString("latin1", 0, 8);
  return magic === "OpusHead" || magic === "OpusTags";
}

/**
 * 48 kHz samples in an Opus packet from its TOC byte (RFC 6716 §3.1).
 * Returns 0 for empty/malformed packets or ones over the 120 ms limit.
 */
export function opusPacketSamples(packet: Buffer): number {
  if (packet.length < 1) return 0;
  const toc = packet[0];
  const config = toc >> 3;
  let frameSize: number;
  if (config < 12) frameSize = [480, 960, 1920, 2880][config & 3]; // SILK 10/20/40/60 ms
  else if (config < 16) frameSize = [480, 960][config & 1]; // Hybrid 10/20 ms
  else frameSize = [120, 240, 480, 960][config & 3]; // CELT 2.5/5/10/20 ms
  const code = toc & 3; // 0: one frame, 1/2: two frames, 3: count in the next byte
  if (code === 3 && packet.length < 2) return 0;
  const frames = code === 0 ? 1 : code < 3 ? 2 : packet[1] & 0x3f;
  const total = frames * frameSize;
  return total > 5760 ? 0 : total;
}
