// Text drawn into pictures, rendered once by a one-shot ffmpeg drawtext and kept (never per frame):
// - the placeholder of a tile whose camera is off or stalled: dark grey with the name near the bottom;
// - the name label at a tile's bottom-left: white on a dark box, sized to the text, ellipsized to fit.
// Without a usable font these come back undefined: the plain dark tile, no label.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { runFfmpegOnce } from "./FfmpegProcess.ts";
import { spawnTurn } from "./spawnPacer.ts";
import { frameBytes } from "./yuv.ts";

/** Dark grey, Y=48: distinct from the black letterbox bars around a picture. */
export const PLACEHOLDER_RGB = "0x303030";
export const PLACEHOLDER_YUV = [48, 128, 128] as const;
/** The label's box: near-black (Y=24), so white text reads on light and dark pictures alike. */
export const LABEL_BOX_RGB = "0x181818";

/** A yuv420p `w` x `h` picture of colour `bg` with `text` drawn by drawtext (`place`: its x/y/size options). */
async function drawText(ffmpegPath: string, text: string, w: number, h: number, bg: string, place: string): Promise<Buffer | undefined> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "mcu-text-"));
  try {
    // A text file instead of text=: no filter-graph escaping of user-chosen names.
    const textFile = path.join(dir, "name.txt");
    await fs.writeFile(textFile, text);
    await spawnTurn();
    const vf = `drawtext=textfile=${textFile}:expansion=none:fontcolor=white:${place}`;
    const r = await runFfmpegOnce(
      ffmpegPath,
      "text-render",
      ["-f", "lavfi", "-i", `color=c=${bg}:s=${w}x${h}:d=0.1`, "-vf", `${vf},format=yuv420p`, "-frames:v", "1", "-f", "rawvideo", "pipe:1"],
      { timeoutMs: 5000, maxStdout: frameBytes(w, h) * 2 },
    );
    const out = r.stdout;
    if (r.code !== 0) return undefined;
    return out.length === frameBytes(w, h) ? out : undefined;
  } catch {
    return undefined;
  } finally {
    void fs.rm(dir, { recursive: true, force: true });
  }
}

export function renderPlaceholder(ffmpegPath: string, name: string, w: number, h: number): Promise<Buffer | undefined> {
  const size = Math.max(10, Math.round(h / 10));
  return drawText(ffmpegPath, name.slice(0, 40), w, h, PLACEHOLDER_RGB, `fontsize=${size}:x=(w-text_w)/2:y=h*0.8-text_h/2`);
}

export interface Label {
  data: Buffer;
  w: number;
  h: number;
}

/** Rightmost column of the Y plane brighter than the box (the end of the text), or -1. */
function textEnd(img: Buffer, w: number, h: number): number {
  let end = -1;
  for (let y = 0; y < h; y++) for (let x = w - 1; x > end; x--) if (img[y * w + x]! > 96) end = x;
  return end;
}

/** The top-left `w` x `h` of a yuv420p `srcW` x `h` picture. */
function cropWidth(src: Buffer, srcW: number, w: number, h: number): Buffer {
  const out = Buffer.alloc(frameBytes(w, h));
  for (let y = 0; y < h; y++) src.copy(out, y * w, y * srcW, y * srcW + w);
  const [sc, dc, ch] = [srcW >> 1, w >> 1, h >> 1];
  for (const [so, dO] of [[srcW * h, w * h], [srcW * h + sc * ch, w * h + dc * ch]] as const) {
    for (let y = 0; y < ch; y++) src.copy(out, dO + y * dc, so + y * sc, so + y * sc + dc);
  }
  return out;
}

/**
 * The name label for a tile `maxW` wide: text `fontSize` px high on a box sized to it (padding
 * half the font size), the name cut with an ellipsis when it would not fit. Measured from the
 * rendered pixels, so it fits whatever the font.
 */
export async function renderLabel(ffmpegPath: string, name: string, maxW: number, fontSize: number): Promise<Label | undefined> {
  const pad = 2 * Math.round(fontSize / 4);
  const h = 2 * Math.round((fontSize * 1.5) / 2);
  const wide = 2 * Math.round((fontSize * 40) / 2);
  const place = `fontsize=${fontSize}:x=${pad}:y=(h-${fontSize})/2`;
  let text = [...name].slice(0, 48).join("");
  for (let attempt = 0; attempt < 3; attempt++) {
    const img = await drawText(ffmpegPath, text, wide, h, LABEL_BOX_RGB, place);
    if (!img) return undefined;
    const end = textEnd(img, wide, h);
    if (end < 0) return undefined; // nothing drawn (no glyphs in this font)
    const w = 2 * Math.ceil((end + 1 + pad) / 2);
    if (w <= maxW) return { data: cropWidth(img, wide, w, h), w, h };
    // Too long: keep the share of characters that fits, leaving room for the ellipsis.
    const chars = [...text.replace(/…$/, "")];
    const keep = Math.floor((chars.length * (maxW - 2 * pad - fontSize)) / (end + 1 - pad));
    if (keep < 1) return undefined;
    text = `${chars.slice(0, keep).join("").trimEnd()}…`;
  }
  return undefined;
}
