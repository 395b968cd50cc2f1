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

/** Copies src[s, s + len) to dst at d, except the columns [k0, k1) of a row that starts at column x0. */
function copyRowAround(src: Buffer, dst: Buffer, d: number, s: number, len: number, x0: number, k0: number, k1: number): void {
  const a = Math.max(0, Math.min(len, k0 - x0));
  const b = Math.max(a, Math.min(len, k1 - x0));
  if (a > 0) src.copy(dst, d, s, s + a);
  if (b < len) src.copy(dst, d + b, s + b, s + len);
}

/**
 * Copies a yuv420p frame (fw x fh) centred into rectangle `r` of the canvas, cropping whatever
 * does not fit. Used for every tile, including an old-size frame shown while a decoder is resized.
 * Canvas pixels inside `keep` (even-aligned) are left as they are: a tile's name label is drawn
 * once and kept, not copied over every frame.
 */
export function blitCentered(canvas: Buffer, cW: number, cH: number, r: Rect, frame: Buffer, fw: number, fh: number, keep?: Rect): void {
  const w = Math.min(fw, r.w);
  const h = Math.min(fh, r.h);
  const dx = r.x + (((r.w - w) >> 1) & ~1);
  const dy = r.y + (((r.h - h) >> 1) & ~1);
  const sx = ((fw - w) >> 1) & ~1;
  const sy = ((fh - h) >> 1) & ~1;
  const k = keep ?? { x: 0, y: 0, w: 0, h: 0 };
  for (let row = 0; row < h; row++) {
    const s = (sy + row) * fw + sx;
    const d = (dy + row) * cW + dx;
    const y = dy + row;
    if (y >= k.y && y < k.y + k.h) copyRowAround(frame, canvas, d, s, w, dx, k.x, k.x + k.w);
    else frame.copy(canvas, d, s, s + w);
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
      copyRowAround(frame, canvas, cU + d, fU + s, w >> 1, cx, ck0, ck1);
      copyRowAround(frame, canvas, cV + d, fV + s, w >> 1, cx, ck0, ck1);
    } else {
      frame.copy(canvas, cU + d, fU + s, fU + s + (w >> 1));
      frame.copy(canvas, cV + d, fV + s, fV + s + (w >> 1));
    }
  }
}
