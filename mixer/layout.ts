// Grid geometry of the composite: pure, no I/O.

export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

const even = (v: number) => v - (v % 2);

/**
 * Auto grid for n tiles on a width x height canvas: ceil(sqrt(n)) columns, as many rows as needed.
 * A short last row is centred. All coordinates and sizes are even so yuv420p chroma stays aligned.
 */
export function gridLayout(n: number, width: number, height: number): Rect[] {
  if (n <= 0) return [];
  const cols = Math.ceil(Math.sqrt(n));
  const rows = Math.ceil(n / cols);
  const w = even(Math.floor(width / cols));
  const h = even(Math.floor(height / rows));
  // Leftover pixels become margins so the grid (and a short last row) sits in the middle.
  const y0 = even(Math.floor((height - h * rows) / 2));
  const tiles: Rect[] = [];
  for (let i = 0; i < n; i++) {
    const row = Math.floor(i / cols);
    const col = i % cols;
    const inRow = row === rows - 1 ? n - cols * (rows - 1) : cols;
    const x0 = even(Math.floor((width - inRow * w) / 2));
    tiles.push({ x: x0 + col * w, y: y0 + row * h, w, h });
  }
  return tiles;
}

/** The largest even-sized rectangle with the source's aspect ratio that fits in a w x h tile, centred. */
export function letterbox(srcW: number, srcH: number, w: number, h: number): Rect {
  const scale = Math.min(w / srcW, h / srcH);
  // Nearest even size (within 1 px of the exact aspect); never larger than the even tile.
  const fw = Math.min(w, Math.max(2, 2 * Math.round((srcW * scale) / 2)));
  const fh = Math.min(h, Math.max(2, 2 * Math.round((srcH * scale) / 2)));
  return { x: even(Math.floor((w - fw) / 2)), y: even(Math.floor((h - fh) / 2)), w: fw, h: fh };
}

export function sameRect(a: Rect | undefined, b: Rect | undefined): boolean {
  return !!a && !!b && a.x === b.x && a.y === b.y && a.w === b.w && a.h === b.h;
}

/** The arrangements of the composite: the grid, the speaker large, or a chosen participant large. */
export type LayoutKind = "grid" | "speaker" | "pinned";
export const LAYOUT_KINDS: readonly LayoutKind[] = ["grid", "speaker", "pinned"];

/**
 * One tile large (index `focus`), the others in a strip along the bottom (a fifth of the height,
 * 16:9 tiles at most, centred). Alone, the focus takes the whole canvas. Even coordinates.
 */
export function focusLayout(n: number, focus: number, width: number, height: number): Rect[] {
  if (n <= 0) return [];
  if (n === 1) return [{ x: 0, y: 0, w: even(width), h: even(height) }];
  const stripH = even(Math.floor(height / 5));
  const others = n - 1;
  const w = even(Math.min(Math.floor(width / others), Math.floor((stripH * 16) / 9)));
  const x0 = even(Math.floor((width - w * others) / 2));
  const tiles: Rect[] = [];
  let k = 0;
  for (let i = 0; i < n; i++) {
    if (i === focus) tiles.push({ x: 0, y: 0, w: even(width), h: even(height - stripH) });
    else tiles.push({ x: x0 + w * k++, y: even(height - stripH), w, h: stripH });
  }
  return tiles;
}
