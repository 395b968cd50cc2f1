import { describe, expect, it } from "vitest";
import type { Rect } from "../../mixer/layout.ts";
import { blitCentered, fillRect, frameBytes } from "../../mixer/yuv.ts";

/** Accessors for the three planes of a yuv420p image. */
function planes(img: Buffer, w: number, h: number) {
  const cw = w >> 1;
  const uOff = w * h;
  const vOff = uOff + cw * (h >> 1);
  return {
    y: (x: number, row: number) => img[row * w + x],
    u: (x: number, row: number) => img[uOff + row * cw + x],
    v: (x: number, row: number) => img[vOff + row * cw + x],
  };
}

const inside = (x: number, y: number, r: Rect) => x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h;
const half = (r: Rect): Rect => ({ x: r.x >> 1, y: r.y >> 1, w: r.w >> 1, h: r.h >> 1 });

/** A frame whose pixels are all distinct within each plane (for frames under 256 pixels). */
function patternFrame(w: number, h: number): Buffer {
  const f = Buffer.alloc(frameBytes(w, h));
  const cw = w >> 1;
  const ch = h >> 1;
  for (let row = 0; row < h; row++) for (let x = 0; x < w; x++) f[row * w + x] = ((row * w + x) * 7) & 0xff;
  for (let row = 0; row < ch; row++) {
    for (let x = 0; x < cw; x++) {
      f[w * h + row * cw + x] = (100 + (row * cw + x) * 7) & 0xff;
      f[w * h + cw * ch + row * cw + x] = (200 + (row * cw + x) * 11) & 0xff;
    }
  }
  return f;
}

describe("frameBytes", () => {
  it("is 1.5 bytes per pixel", () => {
    expect(frameBytes(1280, 720)).toBe(1280 * 720 * 1.5);
    expect(frameBytes(2, 2)).toBe(6);
  });
});

describe("fillRect", () => {
  const W = 16;
  const H = 12;

  it("only touches its rectangle in the Y, U and V planes", () => {
    const img = Buffer.alloc(frameBytes(W, H), 7);
    const r = { x: 4, y: 2, w: 6, h: 8 };
    fillRect(img, W, H, r, 50, 60, 70);
    const p = planes(img, W, H);
    for (let row = 0; row < H; row++) {
      for (let x = 0; x < W; x++) expect(p.y(x, row), `Y ${x},${row}`).toBe(inside(x, row, r) ? 50 : 7);
    }
    const c = half(r);
    for (let row = 0; row < H / 2; row++) {
      for (let x = 0; x < W / 2; x++) {
        expect(p.u(x, row), `U ${x},${row}`).toBe(inside(x, row, c) ? 60 : 7);
        expect(p.v(x, row), `V ${x},${row}`).toBe(inside(x, row, c) ? 70 : 7);
      }
    }
  });

  it("can fill the whole canvas", () => {
    const img = Buffer.alloc(frameBytes(W, H), 1);
    fillRect(img, W, H, { x: 0, y: 0, w: W, h: H }, 16, 128, 128);
    expect(img.subarray(0, W * H).every((b) => b === 16)).toBe(true);
    expect(img.subarray(W * H).every((b) => b === 128)).toBe(true);
  });

  it("fills a rectangle in the bottom-right corner without writing past the buffer", () => {
    const img = Buffer.alloc(frameBytes(W, H), 0);
    const r = { x: 10, y: 8, w: 6, h: 4 };
    fillRect(img, W, H, r, 1, 2, 3);
    const p = planes(img, W, H);
    expect(p.y(15, 11)).toBe(1);
    expect(p.y(9, 11)).toBe(0);
    expect(p.u(7, 5)).toBe(2);
    expect(p.v(7, 5)).toBe(3);
    expect(p.v(4, 5)).toBe(0);
    expect(img.length).toBe(frameBytes(W, H));
  });
});

describe("blitCentered", () => {
  const CW = 32;
  const CH = 24;
  const BG = 9;

  /** Checks every canvas pixel of every plane: inside `dst` it is frame pixel (x - dst.x + sx, ...), else BG. */
  function expectBlit(canvas: Buffer, frame: Buffer, fw: number, fh: number, dst: Rect, sx: number, sy: number) {
    const c = planes(canvas, CW, CH);
    const f = planes(frame, fw, fh);
    for (let row = 0; row < CH; row++) {
      for (let x = 0; x < CW; x++) {
        const want = inside(x, row, dst) ? f.y(x - dst.x + sx, row - dst.y + sy) : BG;
        expect(c.y(x, row), `Y ${x},${row}`).toBe(want);
      }
    }
    const cd = half(dst);
    for (let row = 0; row < CH / 2; row++) {
      for (let x = 0; x < CW / 2; x++) {
        const inRect = inside(x, row, cd);
        const fx = x - cd.x + (sx >> 1);
        const fy = row - cd.y + (sy >> 1);
        expect(c.u(x, row), `U ${x},${row}`).toBe(inRect ? f.u(fx, fy) : BG);
        expect(c.v(x, row), `V ${x},${row}`).toBe(inRect ? f.v(fx, fy) : BG);
      }
    }
  }

  it.each([
    ["at the tile's bottom-left, as a label sits", { x: 10, y: 4, w: 12, h: 16 }, 32, 24, { x: 12, y: 14, w: 6, h: 4 }],
    ["overhanging the frame's left edge and the tile's bottom", { x: 8, y: 4, w: 12, h: 10 }, 4, 6, { x: 10, y: 8, w: 4, h: 8 }],
    ["across the whole frame width", { x: 0, y: 0, w: 16, h: 12 }, 16, 12, { x: 0, y: 2, w: 16, h: 2 }],
  ] as const)("leaves the canvas inside `keep` as it was, %s", (_what, r, fw, fh, keep) => {
    const frame = patternFrame(fw, fh);
    const plain = Buffer.alloc(frameBytes(CW, CH), BG);
    blitCentered(plain, CW, CH, r, frame, fw, fh);
    const kept = Buffer.alloc(frameBytes(CW, CH), BG);
    fillRect(kept, CW, CH, keep, 250, 251, 252);
    blitCentered(kept, CW, CH, r, frame, fw, fh, keep);
    const a = planes(plain, CW, CH);
    const b = planes(kept, CW, CH);
    for (let row = 0; row < CH; row++) {
      for (let x = 0; x < CW; x++) expect(b.y(x, row), `Y ${x},${row}`).toBe(inside(x, row, keep) ? 250 : a.y(x, row));
    }
    for (let row = 0; row < CH / 2; row++) {
      for (let x = 0; x < CW / 2; x++) {
        expect(b.u(x, row), `U ${x},${row}`).toBe(inside(x, row, half(keep)) ? 251 : a.u(x, row));
        expect(b.v(x, row), `V ${x},${row}`).toBe(inside(x, row, half(keep)) ? 252 : a.v(x, row));
      }
    }
  });

  it("copies a smaller frame centred into the rectangle", () => {
    const canvas = Buffer.alloc(frameBytes(CW, CH), BG);
    const frame = patternFrame(4, 6);
    const r = { x: 8, y: 4, w: 12, h: 10 };
    blitCentered(canvas, CW, CH, r, frame, 4, 6);
    // (12-4)/2 = 4 and (10-6)/2 = 2 px of margin on each side.
    expectBlit(canvas, frame, 4, 6, { x: 12, y: 6, w: 4, h: 6 }, 0, 0);
    // Spot checks of the corners of the copied frame.
    const c = planes(canvas, CW, CH);
    const f = planes(frame, 4, 6);
    expect(c.y(12, 6)).toBe(f.y(0, 0));
    expect(c.y(15, 11)).toBe(f.y(3, 5));
    expect(c.u(6, 3)).toBe(f.u(0, 0));
    expect(c.v(7, 5)).toBe(f.v(1, 2));
  });

  it("crops a larger frame centred into a smaller rectangle", () => {
    const canvas = Buffer.alloc(frameBytes(CW, CH), BG);
    const frame = patternFrame(16, 12);
    const r = { x: 2, y: 6, w: 8, h: 4 };
    blitCentered(canvas, CW, CH, r, frame, 16, 12);
    // The middle 8x4 of the 16x12 frame: source offset (4, 4).
    expectBlit(canvas, frame, 16, 12, r, 4, 4);
    const c = planes(canvas, CW, CH);
    const f = planes(frame, 16, 12);
    expect(c.y(2, 6)).toBe(f.y(4, 4));
    expect(c.y(9, 9)).toBe(f.y(11, 7));
    expect(c.u(1, 3)).toBe(f.u(2, 2));
    expect(c.v(4, 4)).toBe(f.v(5, 3));
  });

  it("crops in one dimension and centres in the other", () => {
    const canvas = Buffer.alloc(frameBytes(CW, CH), BG);
    const frame = patternFrame(20, 4); // wider and shorter than the rect
    const r = { x: 4, y: 2, w: 12, h: 12 };
    blitCentered(canvas, CW, CH, r, frame, 20, 4);
    // Horizontally the middle 12 of 20 (offset 4); vertically centred with 4 rows above.
    expectBlit(canvas, frame, 20, 4, { x: 4, y: 6, w: 12, h: 4 }, 4, 0);
  });

  it("a frame of exactly the rectangle's size is copied 1:1", () => {
    const canvas = Buffer.alloc(frameBytes(CW, CH), BG);
    const frame = patternFrame(10, 8);
    const r = { x: 20, y: 14, w: 10, h: 8 };
    blitCentered(canvas, CW, CH, r, frame, 10, 8);
    expectBlit(canvas, frame, 10, 8, r, 0, 0);
  });

  it("keeps chroma aligned: offsets are rounded down to even pixels", () => {
    const canvas = Buffer.alloc(frameBytes(CW, CH), BG);
    const frame = patternFrame(4, 4);
    const r = { x: 0, y: 0, w: 10, h: 10 }; // margins of 3 are rounded to 2
    blitCentered(canvas, CW, CH, r, frame, 4, 4);
    expectBlit(canvas, frame, 4, 4, { x: 2, y: 2, w: 4, h: 4 }, 0, 0);
  });
  it("copies what the frame holds now, when the same buffer is refilled and shown in two places in turn", () => {
    // The tile decoders refill the same buffers; blitCentered keeps views of them between calls.
    const frame = patternFrame(8, 6);
    const a = { x: 0, y: 0, w: 8, h: 6 }, b = { x: 16, y: 12, w: 8, h: 6 };
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < frame.length; i++) frame[i] = (frame[i]! + 37) & 0xff;
      for (const r of [a, b, a]) {
        const canvas = Buffer.alloc(frameBytes(CW, CH), BG);
        blitCentered(canvas, CW, CH, r, frame, 8, 6);
        expectBlit(canvas, frame, 8, 6, r, 0, 0);
      }
    }
  });
});
