// yuv420p plane arithmetic for the composite canvas: pure, no I/O.
import type { Rect } from "./layout.ts";

export const frameBytes = (w: number, h: number) => (w * h * 3) / 2;

/** Fills a rectangle of a yuv420p image with one colour (Y, U, V). */
export function fillRect(img: Buffer, imgW: number, imgH: number, r: Rect, y: number, u: number, v: number): void {
  const cw = imgW >> 1;
  const uOff = imgW * imgH;
  const vOff = uOff + cw * (imgH >> 1);
  for (let row = r.y; row < r.y + r.h; row++) img.fill(y, row * imgW + r.x, row * imgW + r.x + r.w);
  for (let row = r.y >> 1; row < (r.y + r.h) >> 1; row++) {
    img.fill(u, uOff + row * cw + (r.x >> 1), uOff + row * cw + ((r.x + r.w) >> 1));
    img.fill(v, vOff + row * cw + (r.x >> 1), vOff + row * cw + ((r.x + r.w) >> 1));
  }
}

/**
 * What blitting one source frame into one place of the canvas copies: views of the frame's rows
 * (and parts of rows) with where each goes. Made once per frame buffer and geometry and reused:
 * the tile decoders fill the same two buffers over and over, and `Buffer.copy` of a range made a
 * new view per row (9 tiles × 720 rows × 30 fps: 14 MB/s of garbage, most of the media worker's).
 */
interface BlitPlan {
  views: Uint8Array[];
  at: number[];
}
/** Per frame buffer, its plans by geometry (a few: the same frame may be shown in more than one place or size). */
const plans = new WeakMap<Buffer, Map<string, BlitPlan>>();
const PLANS_PER_FRAME = 4;

/** Adds src[s, s + len) → d to the plan, except the columns [k0, k1) of a row that starts at column x0. */
function planRowAround(p: BlitPlan, src: Buffer, d: number, s: number, len: number, x0: number, k0: number, k1: number): void {
  const a = Math.max(0, Math.min(len, k0 - x0));
  const b = Math.max(a, Math.min(len, k1 - x0));
  if (a > 0) planRow(p, src, d, s, a);
  if (b < len) planRow(p, src, d + b, s + b, len - b);
}
function planRow(p: BlitPlan, src: Buffer, d: number, s: number, len: number): void {
  p.views.push(src.subarray(s, s + len));
  p.at.push(d);
}

/**
 * Copies a yuv420p frame (fw x fh) centred into rectangle `r` of the canvas, cropping whatever
 * does not fit. Used for every tile, including an old-size frame shown while a decoder is resized.
 * Canvas pixels inside `keep` (even-aligned) are left as they are: a tile's name label is drawn
 * once and kept, not copied over every frame.
 */
export function blitCentered(canvas: Buffer, cW: number, cH: number, r: Rect, frame: Buffer, fw: number, fh: number, keep?: Rect): void {
  const k = keep ?? { x: 0, y: 0, w: 0, h: 0 };
  const key = `${cW}x${cH} ${r.x},${r.y},${r.w},${r.h} ${fw}x${fh} ${k.x},${k.y},${k.w},${k.h} ${frame.length}`;
  let byKey = plans.get(frame);
  if (!byKey) plans.set(frame, (byKey = new Map()));
  let p = byKey.get(key);
  if (!p) {
    if (byKey.size >= PLANS_PER_FRAME) byKey.clear();
    p = planBlit(cW, cH, r, frame, fw, fh, k);
    byKey.set(key, p);
  }
  for (let i = 0; i < p.views.length; i++) canvas.set(p.views[i]!, p.at[i]!);
}

function planBlit(cW: number, cH: number, r: Rect, frame: Buffer, fw: number, fh: number, k: Rect): BlitPlan {
  const p: BlitPlan = { views: [], at: [] };
  const w = Math.min(fw, r.w);
  const h = Math.min(fh, r.h);
  const dx = r.x + (((r.w - w) >> 1) & ~1);
  const dy = r.y + (((r.h - h) >> 1) & ~1);
  const sx = ((fw - w) >> 1) & ~1;
  const sy = ((fh - h) >> 1) & ~1;
  for (let row = 0; row < h; row++) {
    const s = (sy + row) * fw + sx;
    const d = (dy + row) * cW + dx;
    const y = dy + row;
    if (y >= k.y && y < k.y + k.h) planRowAround(p, frame, d, s, w, dx, k.x, k.x + k.w);
    else planRow(p, frame, d, s, w);
  }
  const cfw = fw >> 1;
  const ccw = cW >> 1;
  const fU = fw * fh;
  const fV = fU + cfw * (fh >> 1);
  const cU = cW * cH;
  const cV = cU + ccw * (cH >> 1);
  const [cx, ck0, ck1] = [dx >> 1, k.x >> 1, (k.x + k.w) >> 1];
  for (let row = 0; row < h >> 1; row++) {
    const s = ((sy >> 1) + row) * cfw + (sx >> 1);
    const d = ((dy >> 1) + row) * ccw + cx;
    const y = (dy >> 1) + row;
    if (y >= k.y >> 1 && y < (k.y + k.h) >> 1) {
      planRowAround(p, frame, cU + d, fU + s, w >> 1, cx, ck0, ck1);
      planRowAround(p, frame, cV + d, fV + s, w >> 1, cx, ck0, ck1);
    } else {
      planRow(p, frame, cU + d, fU + s, w >> 1);
      planRow(p, frame, cV + d, fV + s, w >> 1);
    }
  }
  return p;
}
