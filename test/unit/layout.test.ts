import { describe, expect, it } from "vitest";
import { focusLayout, gridLayout, letterbox, sameRect, type Rect } from "../../mixer/layout.ts";

const CANVASES: [number, number][] = [
  [1280, 720],
  [640, 360],
];
const COUNTS = Array.from({ length: 16 }, (_, i) => i + 1);

const overlaps = (a: Rect, b: Rect) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
const isEven = (v: number) => v % 2 === 0;

describe("gridLayout", () => {
  it("returns no tiles for n <= 0", () => {
    expect(gridLayout(0, 1280, 720)).toEqual([]);
    expect(gridLayout(-3, 1280, 720)).toEqual([]);
  });

  it("a single tile fills the whole canvas", () => {
    expect(gridLayout(1, 1280, 720)).toEqual([{ x: 0, y: 0, w: 1280, h: 720 }]);
    expect(gridLayout(1, 640, 360)).toEqual([{ x: 0, y: 0, w: 640, h: 360 }]);
  });

  it("4 tiles on 1280x720 are a 2x2 grid of 640x360", () => {
    expect(gridLayout(4, 1280, 720)).toEqual([
      { x: 0, y: 0, w: 640, h: 360 },
      { x: 640, y: 0, w: 640, h: 360 },
      { x: 0, y: 360, w: 640, h: 360 },
      { x: 640, y: 360, w: 640, h: 360 },
    ]);
  });

  it("3 tiles on 1280x720: two on top, the third centred below", () => {
    expect(gridLayout(3, 1280, 720)).toEqual([
      { x: 0, y: 0, w: 640, h: 360 },
      { x: 640, y: 0, w: 640, h: 360 },
      { x: 320, y: 360, w: 640, h: 360 },
    ]);
  });

  for (const [W, H] of CANVASES) {
    describe(`${W}x${H}`, () => {
      it.each(COUNTS)("n=%i: ceil(sqrt(n)) columns, enough rows, equal tile sizes", (n) => {
        const tiles = gridLayout(n, W, H);
        expect(tiles).toHaveLength(n);
        const cols = Math.ceil(Math.sqrt(n));
        const rows = Math.ceil(n / cols);
        const ys = [...new Set(tiles.map((t) => t.y))].sort((a, b) => a - b);
        expect(ys).toHaveLength(rows);
        // Tiles are filled row by row: row r holds tiles r*cols .. r*cols+cols-1.
        tiles.forEach((t, i) => expect(t.y).toBe(ys[Math.floor(i / cols)]));
        expect(tiles.filter((t) => t.y === ys[0])).toHaveLength(Math.min(n, cols));
        for (const t of tiles) {
          expect(t.w).toBe(tiles[0].w);
          expect(t.h).toBe(tiles[0].h);
        }
        // Tiles use (almost) all of the space: less than one column/row of slack, bar even rounding.
        expect(W - cols * tiles[0].w).toBeLessThan(cols * 2);
        expect(H - rows * tiles[0].h).toBeLessThan(rows * 2);
      });

      it.each(COUNTS)("n=%i: tiles lie inside the canvas and do not overlap", (n) => {
        const tiles = gridLayout(n, W, H);
        for (const t of tiles) {
          expect(t.w).toBeGreaterThan(0);
          expect(t.h).toBeGreaterThan(0);
          expect(t.x).toBeGreaterThanOrEqual(0);
          expect(t.y).toBeGreaterThanOrEqual(0);
          expect(t.x + t.w).toBeLessThanOrEqual(W);
          expect(t.y + t.h).toBeLessThanOrEqual(H);
        }
        for (let i = 0; i < n; i++) {
          for (let j = i + 1; j < n; j++) expect(overlaps(tiles[i], tiles[j]), `tiles ${i} and ${j}`).toBe(false);
        }
      });

      it.each(COUNTS)("n=%i: every coordinate and size is even (yuv420p chroma alignment)", (n) => {
        for (const t of gridLayout(n, W, H)) {
          expect([t.x, t.y, t.w, t.h].every(isEven), JSON.stringify(t)).toBe(true);
        }
      });

      it.each(COUNTS)("n=%i: the grid is centred and a short last row is centred under it", (n) => {
        const tiles = gridLayout(n, W, H);
        const cols = Math.ceil(Math.sqrt(n));
        const { w, h } = tiles[0];
        const firstRow = tiles.slice(0, Math.min(n, cols));
        const last = tiles[n - 1];
        const lastRow = tiles.filter((t) => t.y === last.y);
        // Full grid: left/right and top/bottom margins differ by at most one even step.
        const gridLeft = firstRow[0].x;
        const gridRight = W - (firstRow[0].x + cols * w);
        expect(Math.abs(gridLeft - gridRight)).toBeLessThanOrEqual(2);
        expect(Math.abs(tiles[0].y - (H - (last.y + h)))).toBeLessThanOrEqual(2);
        // Last row: contiguous, and its middle is within 1 px of the grid's middle.
        lastRow.forEach((t, i) => expect(t.x).toBe(lastRow[0].x + i * w));
        const gridMid = gridLeft + (cols * w) / 2;
        const rowMid = lastRow[0].x + (lastRow.length * w) / 2;
        expect(Math.abs(rowMid - gridMid)).toBeLessThanOrEqual(1);
        if (lastRow.length < cols) expect(lastRow[0].x).toBeGreaterThan(gridLeft);
      });
    });
  }
});

describe("letterbox", () => {
  const expectInside = (r: Rect, w: number, h: number) => {
    expect(r.x).toBeGreaterThanOrEqual(0);
    expect(r.y).toBeGreaterThanOrEqual(0);
    expect(r.x + r.w).toBeLessThanOrEqual(w);
    expect(r.y + r.h).toBeLessThanOrEqual(h);
  };

  it("a source of the tile's own aspect fills the tile", () => {
    expect(letterbox(1280, 720, 640, 360)).toEqual({ x: 0, y: 0, w: 640, h: 360 });
    expect(letterbox(320, 240, 640, 480)).toEqual({ x: 0, y: 0, w: 640, h: 480 });
  });

  it("pillarboxes a 4:3 source in a 16:9 tile, centred", () => {
    expect(letterbox(640, 480, 640, 360)).toEqual({ x: 80, y: 0, w: 480, h: 360 });
  });

  it("letterboxes a 16:9 source in a 4:3 tile, centred", () => {
    expect(letterbox(1280, 720, 320, 240)).toEqual({ x: 0, y: 30, w: 320, h: 180 });
  });

  it("pillarboxes a portrait source in a landscape tile", () => {
    expect(letterbox(480, 640, 640, 360)).toEqual({ x: 184, y: 0, w: 270, h: 360 });
  });

  it.each([
    [1280, 720, 1280, 720],
    [1280, 720, 640, 720],
    [1280, 720, 426, 360],
    [1280, 720, 426, 240],
    [1280, 720, 320, 240],
    [1280, 720, 320, 180],
    [640, 480, 640, 360],
    [640, 480, 426, 240],
    [640, 480, 320, 360],
    [480, 640, 640, 360],
    [480, 640, 212, 180],
    [1920, 1080, 426, 360],
    [176, 144, 640, 360],
  ])("keeps the aspect of %ix%i within 1 px in a %ix%i tile", (sw, sh, w, h) => {
    const r = letterbox(sw, sh, w, h);
    const scale = Math.min(w / sw, h / sh);
    expect(Math.abs(r.w - sw * scale)).toBeLessThanOrEqual(1);
    expect(Math.abs(r.h - sh * scale)).toBeLessThanOrEqual(1);
  });

  it("always fits the tile, has even geometry and is centred", () => {
    const sources: [number, number][] = [
      [1280, 720], [640, 480], [320, 240], [480, 640], [176, 144], [1920, 1080], [100, 100], [333, 111],
    ];
    const tileSizes = new Set<string>();
    for (const [W, H] of CANVASES) for (const n of COUNTS) tileSizes.add(`${gridLayout(n, W, H)[0].w}x${gridLayout(n, W, H)[0].h}`);
    for (const [sw, sh] of sources) {
      for (const tile of tileSizes) {
        const [w, h] = tile.split("x").map(Number);
        const r = letterbox(sw, sh, w, h);
        const what = `${sw}x${sh} in ${tile}: ${JSON.stringify(r)}`;
        expectInside(r, w, h);
        expect([r.x, r.y, r.w, r.h].every(isEven), what).toBe(true);
        // One side touches the tile (up to even rounding), the other is centred.
        expect(Math.min(w - r.w, h - r.h), what).toBeLessThanOrEqual(2);
        expect(Math.abs(r.x - (w - r.x - r.w)), what).toBeLessThanOrEqual(2);
        expect(Math.abs(r.y - (h - r.y - r.h)), what).toBeLessThanOrEqual(2);
      }
    }
  });

  it("never returns an empty rectangle for a tiny tile", () => {
    const r = letterbox(1920, 1080, 2, 2);
    expect(r.w).toBeGreaterThanOrEqual(2);
    expect(r.h).toBeGreaterThanOrEqual(2);
  });
});

describe("sameRect", () => {
  const r = { x: 2, y: 4, w: 6, h: 8 };
  it("compares by value", () => {
    expect(sameRect(r, { ...r })).toBe(true);
    expect(sameRect(r, r)).toBe(true);
  });
  it("differs when any field differs", () => {
    expect(sameRect(r, { ...r, x: 0 })).toBe(false);
    expect(sameRect(r, { ...r, y: 0 })).toBe(false);
    expect(sameRect(r, { ...r, w: 0 })).toBe(false);
    expect(sameRect(r, { ...r, h: 0 })).toBe(false);
  });
  it("is false when either side is undefined", () => {
    expect(sameRect(undefined, r)).toBe(false);
    expect(sameRect(r, undefined)).toBe(false);
    expect(sameRect(undefined, undefined)).toBe(false);
  });
});

describe("focusLayout", () => {
  it("puts the focus large above a strip of the others, all inside the canvas, even and without overlap", () => {
    for (const n of [2, 3, 5, 9, 16]) {
      for (const focus of [0, n - 1]) {
        const rects = focusLayout(n, focus, 1280, 720);
        expect(rects.length).toBe(n);
        const big = rects[focus]!;
        expect(big).toEqual({ x: 0, y: 0, w: 1280, h: 720 - 144 });
        for (const [i, r] of rects.entries()) {
          for (const v of [r.x, r.y, r.w, r.h]) expect(v % 2).toBe(0);
          expect(r.x + r.w).toBeLessThanOrEqual(1280);
          expect(r.y + r.h).toBeLessThanOrEqual(720);
          if (i !== focus) expect(r.h).toBe(144);
          for (const [j, o] of rects.entries()) {
            if (i === j) continue;
            const overlap = r.x < o.x + o.w && o.x < r.x + r.w && r.y < o.y + o.h && o.y < r.y + r.h;
            expect(overlap, `${n} tiles: ${i} and ${j}`).toBe(false);
          }
        }
      }
    }
  });

  it("gives the whole canvas to a participant alone", () => {
    expect(focusLayout(1, 0, 1280, 720)).toEqual([{ x: 0, y: 0, w: 1280, h: 720 }]);
  });
});
