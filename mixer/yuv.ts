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
 * Copies a yuv420p frame (fw x fh) centred into rectangle `r` of the canvas, cropping whatever
 * does not fit. Used for every tile, including an old-size frame shown while a decoder is resized.
 */
export function blitCentered(canvas: Buffer, cW: number, cH: number, r: Rect, frame: Buffer, fw: number, fh: number): void {
  const w = Math.min(fw, r.w);
  const h = Math.min(fh, r.h);
  const dx = r.x + (((r.w - w) >> 1) & ~1);
  const dy = r.y + (((r.h - h) >> 1) & ~1);
  const sx = ((fw - w) >> 1) & ~1;
  const sy = ((fh - h) >> 1) & ~1;
  for (let row = 0; row < h; row++) {
    const s = (sy + row) * fw + sx;
    frame.copy(canvas, (dy + row) * cW + dx, s, s + w);
  }
  const cfw = fw >> 1;
  const ccw = cW >> 1;
  const fU = fw * fh;
  const fV = fU + cfw * (fh >> 1);
  const cU = cW * cH;
  const cV = cU + ccw * (cH >> 1);
  for (let row = 0; row < h >> 1; row++) {
    const s = ((sy >> 1) + row) * cfw + (sx >> 1);
    const d = ((dy >> 1) + row) * ccw + (dx >> 1);
    frame.copy(canvas, cU + d, fU + s, fU + s + (w >> 1));
    frame.copy(canvas, cV + d, fV + s, fV + s + (w >> 1));
  }
}
