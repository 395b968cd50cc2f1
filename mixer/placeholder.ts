// The picture of a tile whose camera is off or stalled: dark grey with the participant's name
// near the bottom, rendered once per (name, tile size) by a one-shot ffmpeg drawtext. Without a
// usable font the compositor falls back to the plain dark tile.
import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { frameBytes } from "./yuv.ts";

/** Dark grey, Y=48: distinct from the black letterbox bars around a picture. */
export const PLACEHOLDER_RGB = "0x303030";
export const PLACEHOLDER_YUV = [48, 128, 128] as const;

export async function renderPlaceholder(ffmpegPath: string, name: string, w: number, h: number): Promise<Buffer | undefined> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "mcu-ph-"));
  try {
    // A text file instead of text=: no filter-graph escaping of user-chosen names.
    const textFile = path.join(dir, "name.txt");
    await fs.writeFile(textFile, name.slice(0, 40));
    const size = Math.max(10, Math.round(h / 10));
    const vf = `drawtext=textfile=${textFile}:expansion=none:fontcolor=white:fontsize=${size}:x=(w-text_w)/2:y=h*0.8-text_h/2`;
    const out = await new Promise<Buffer>((resolve, reject) => {
      execFile(
        ffmpegPath,
        ["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", `color=c=${PLACEHOLDER_RGB}:s=${w}x${h}:d=0.1`,
          "-vf", `${vf},format=yuv420p`, "-frames:v", "1", "-f", "rawvideo", "pipe:1"],
        { encoding: "buffer", maxBuffer: frameBytes(w, h) * 2, timeout: 5000 },
        (err, stdout) => (err ? reject(err) : resolve(stdout)),
      );
    });
    return out.length === frameBytes(w, h) ? out : undefined;
  } catch {
    return undefined;
  } finally {
    void fs.rm(dir, { recursive: true, force: true });
  }
}
