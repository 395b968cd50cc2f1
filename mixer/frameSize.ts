// A camera frame's picture size from its own header, read before any decoder sees the bytes:
// VP8 keyframes carry it in their first ten bytes (RFC 6386 §9.1), H.264 in the sequence
// parameter set sent with each keyframe (ITU-T H.264 §7.3.2.1.1). Inter frames keep the size of
// the keyframe before them.

export interface PictureSize {
  width: number;
  height: number;
}

/** Picture size from a VP8 keyframe header; undefined for an inter frame or a malformed one. */
export function vp8KeyframeSize(data: Buffer): PictureSize | undefined {
  if (data.length < 10 || (data[0]! & 1) !== 0) return undefined;
  if (data[3] !== 0x9d || data[4] !== 0x01 || data[5] !== 0x2a) return undefined;
  return { width: data.readUInt16LE(6) & 0x3fff, height: data.readUInt16LE(8) & 0x3fff };
}

/** Reads bits MSB first from an RBSP (emulation prevention bytes already removed). */
class Bits {
  private pos = 0;
  constructor(private readonly b: Buffer) {}
  bit(): number {
    const byte = this.pos >> 3;
    if (byte >= this.b.length) throw new RangeError("SPS ends early");
    return (this.b[byte]! >> (7 - (this.pos++ & 7))) & 1;
  }
  bits(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 2 + this.bit();
    return v;
  }
  /** ue(v): Exp-Golomb; more than 31 leading zeros is no real stream. */
  ue(): number {
    let zeros = 0;
    while (this.bit() === 0) if (++zeros > 31) throw new RangeError("Exp-Golomb code too long");
    return 2 ** zeros - 1 + this.bits(zeros);
  }
  se(): number {
    const k = this.ue();
    return k & 1 ? (k + 1) / 2 : -k / 2;
  }
}

const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

/** Picture size from an SPS NAL unit (its header byte first); undefined if it cannot be read. */
export function h264SpsSize(nal: Buffer): PictureSize | undefined {
  // Emulation prevention: 00 00 03 → 00 00.
  const rbsp: number[] = [];
  for (let i = 1, zeros = 0; i < nal.length && rbsp.length < 256; i++) {
    const v = nal[i]!;
    if (zeros >= 2 && v === 3) {
      zeros = 0;
      continue;
    }
    zeros = v === 0 ? zeros + 1 : 0;
    rbsp.push(v);
  }
  try {
    const r = new Bits(Buffer.from(rbsp));
    const profile = r.bits(8);
    r.bits(16); // constraint flags, level
    r.ue(); // seq_parameter_set_id
    let chroma = 1;
    if (HIGH_PROFILES.has(profile)) {
      chroma = r.ue();
      if (chroma === 3) r.bit(); // separate_colour_plane_flag
      r.ue(); // bit_depth_luma_minus8
      r.ue(); // bit_depth_chroma_minus8
      r.bit(); // qpprime_y_zero_transform_bypass_flag
      if (r.bit()) {
        for (let i = 0; i < (chroma === 3 ? 12 : 8); i++) {
          if (!r.bit()) continue;
          for (let j = 0, last = 8, next = 8; j < (i < 6 ? 16 : 64) && next !== 0; j++) {
            next = (last + r.se() + 256) % 256;
            last = next === 0 ? last : next;
          }
        }
      }
    }
    r.ue(); // log2_max_frame_num_minus4
    const pocType = r.ue();
    if (pocType === 0) r.ue();
    else if (pocType === 1) {
      r.bit();
      r.se();
      r.se();
      const n = r.ue();
      if (n > 255) return undefined;
      for (let i = 0; i < n; i++) r.se();
    }
    r.ue(); // max_num_ref_frames
    r.bit(); // gaps_in_frame_num_value_allowed_flag
    const wMbs = r.ue() + 1;
    const hUnits = r.ue() + 1;
    const frameMbsOnly = r.bit();
    if (!frameMbsOnly) r.bit();
    r.bit(); // direct_8x8_inference_flag
    let crop = [0, 0, 0, 0];
    if (r.bit()) crop = [r.ue(), r.ue(), r.ue(), r.ue()];
    const cropX = chroma === 0 || chroma === 3 ? 1 : 2;
    const cropY = (chroma === 1 ? 2 : 1) * (2 - frameMbsOnly);
    const width = wMbs * 16 - cropX * (crop[0]! + crop[1]!);
    const height = (2 - frameMbsOnly) * hUnits * 16 - cropY * (crop[2]! + crop[3]!);
    return width > 0 && height > 0 ? { width, height } : undefined;
  } catch {
    return undefined;
  }
}

/** Picture size from an Annex-B H.264 frame that carries an SPS (a keyframe as cameras send it). */
export function h264FrameSize(annexB: Buffer): PictureSize | undefined {
  for (let i = 0; i + 3 < annexB.length; i++) {
    if (annexB[i] !== 0 || annexB[i + 1] !== 0 || annexB[i + 2] !== 1) continue;
    if ((annexB[i + 3]! & 0x1f) !== 7) continue;
    let end = annexB.indexOf(Buffer.from([0, 0, 1]), i + 3);
    if (end < 0) end = annexB.length;
    else if (annexB[end - 1] === 0) end--;
    return h264SpsSize(annexB.subarray(i + 3, end));
  }
  return undefined;
}
