// The H.264 RTP payload format (RFC 6184, packetization mode 1) for the frame assembler: which
// packet starts a frame or a keyframe, and the frame as Annex-B (start codes) for ffmpeg.
// A frame starts with a parameter set, an SEI or AUD, or the slice whose first macroblock is 0.
import type { PayloadFormat } from "./vp8FrameAssembler.ts";

const START = Buffer.from([0, 0, 0, 1]);
const STAP_A = 24;
const FU_A = 28;
const IDR = 5;
const SPS = 7;

/** Does a NAL unit of `type`, whose bytes after the NAL header begin with `body0`, open an access unit? */
function opensFrame(type: number, body0: number | undefined): boolean {
  if (type === 6 || type === SPS || type === 8 || type === 9) return true; // SEI, SPS, PPS, AUD
  // A slice (1..5): first_mb_in_slice is ue(v), and 0 is coded as a single 1 bit.
  return type >= 1 && type <= 5 && body0 !== undefined && (body0 & 0x80) !== 0;
}

/** NAL unit types carried by one packet (the first of a STAP-A's, the fragmented one of a FU-A's start). */
function firstNal(p: Buffer): { type: number; body0: number | undefined; fuStart: boolean } | undefined {
  const t = p[0]! & 0x1f;
  if (t >= 1 && t <= 23) return { type: t, body0: p[1], fuStart: true };
  if (t === STAP_A && p.length > 3) return { type: p[3]! & 0x1f, body0: p[4], fuStart: true };
  if (t === FU_A && p.length > 2) return { type: p[1]! & 0x1f, body0: p[2], fuStart: (p[1]! & 0x80) !== 0 };
  return undefined;
}

/** The packet's NAL units (or piece of one) as Annex-B bytes. */
function toAnnexB(p: Buffer, out: Buffer[]): number[] {
  const t = p[0]! & 0x1f;
  if (t >= 1 && t <= 23) {
    out.push(START, p);
    return [t];
  }
  if (t === STAP_A) {
    const types: number[] = [];
    for (let o = 1; o + 2 <= p.length; ) {
      const n = p.readUInt16BE(o);
      const nal = p.subarray(o + 2, o + 2 + n);
      if (nal.length) out.push(START, nal), types.push(nal[0]! & 0x1f);
      o += 2 + n;
    }
    return types;
  }
  if (t === FU_A && p.length > 2) {
    const start = (p[1]! & 0x80) !== 0;
    if (start) out.push(START, Buffer.from([(p[0]! & 0xe0) | (p[1]! & 0x1f)]));
    out.push(p.subarray(2));
    return start ? [p[1]! & 0x1f] : [];
  }
  return [];
}

export const H264_FORMAT: PayloadFormat = {
  describe(payload) {
    const n = firstNal(payload);
    if (!n) return undefined;
    const start = n.fuStart && opensFrame(n.type, n.body0);
    return { start, key: start && (n.type === SPS || n.type === IDR), payload };
  },
  join(parts) {
    const out: Buffer[] = [];
    let key = false;
    for (const p of parts) if (toAnnexB(p, out).includes(IDR)) key = true;
    return { data: Buffer.concat(out), isKeyframe: key };
  },
};
