// Helpers for reading decoded rgb24 frames in video assertions.

export type Rgb = [number, number, number];
export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Mean colour of `rect` in a packed rgb24 frame `width` pixels wide (rect is clipped to the frame). */
export function meanRgb(frame: Buffer, width: number, rect: Rect): Rgb {
  const height = Math.floor(frame.length / (width * 3));
  const x0 = Math.max(0, Math.floor(rect.x));
  const y0 = Math.max(0, Math.floor(rect.y));
  const x1 = Math.min(width, Math.floor(rect.x + rect.w));
  const y1 = Math.min(height, Math.floor(rect.y + rect.h));
  let r = 0;
  let g = 0;
  let b = 0;
  let n = 0;
  for (let y = y0; y < y1; y++) {
    let o = (y * width + x0) * 3;
    for (let x = x0; x < x1; x++, o += 3) {
      r += frame[o]!;
      g += frame[o + 1]!;
      b += frame[o + 2]!;
      n++;
    }
  }
  if (n === 0) throw new Error(`meanRgb: empty rect ${JSON.stringify(rect)} in ${width}x${height} frame`);
  return [r / n, g / n, b / n];
}

export function rgbDistance(a: Rgb, b: Rgb): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

/** Name of the nearest palette colour (Euclidean RGB), or undefined if none is within maxDistance. */
export function closestColor(
  rgb: Rgb,
  palette: { name: string; rgb: Rgb }[],
  maxDistance = 80,
): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of palette) {
    const d = rgbDistance(rgb, c.rgb);
    if (d < bestD) {
      bestD = d;
      best = c.name;
    }
  }
  return bestD <= maxDistance ? best : undefined;
}

/** True when every channel is below `threshold` (black / dark placeholder). */
export function isDark(rgb: Rgb, threshold = 40): boolean {
  return rgb[0] < threshold && rgb[1] < threshold && rgb[2] < threshold;
}
