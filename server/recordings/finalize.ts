// Post-processing of one recording: the live Matroska part(s) become a seekable WebM (video
// copied, the PCM mix encoded to Opus; with cues and duration), an MP4 (H.264 + AAC) for players that need it and a poster
// JPEG. Every output is written under a temporary name and renamed when complete, so a worker
// killed mid-job leaves nothing half-written under a real name and the job can simply run again.
import fs from "node:fs/promises";
import path from "node:path";
import { runFfmpegOnce } from "../../mixer/FfmpegProcess.ts";
import type { RecordingFile, RecordingMeta, RecordingStore } from "./RecordingStore.ts";

export interface FinalizeSettings {
  ffmpegPath: string;
  /** Also make an MP4 (H.264 + AAC). */
  mp4: boolean;
  /** Opus bitrate of the WebM's audio, kbit/s. */
  audioKbps: number;
  /** Stops the running ffmpeg (shutdown); the job is left to run again. */
  signal?: AbortSignal;
}

/** A job that can never succeed (nothing recorded, recording deleted): not worth a retry. */
export class PermanentJobError extends Error {}

/** A temporary output untouched this long belongs to no running ffmpeg. */
const STALE_TMP_MS = 60_000;
/** An ffmpeg that reports no progress for this long is taken for hung and killed (the job retries). */
const QUIET_LIMIT_MS = 120_000;

export type ProgressFn = (fraction: number) => void | Promise<void>;

// Share of the whole job each step takes (the H.264 encode dominates).
const WEIGHTS = { webm: 0.15, mp4: 0.75, poster: 0.1 };

export const FILE_TYPES: Record<string, string> = {
  "recording.webm": "video/webm",
  "recording.mp4": "video/mp4",
  "poster.jpg": "image/jpeg",
};

export async function finalizeRecording(store: RecordingStore, id: string, s: FinalizeSettings, progress: ProgressFn): Promise<RecordingMeta> {
  const meta = await store.read(id);
  if (!meta) throw new PermanentJobError(`recording ${id} no longer exists`);
  const dir = store.dirOf(id);
  // A worker killed mid-job leaves its temporary outputs behind; ffmpeg keeps a live one's fresh.
  for (const f of await fs.readdir(dir)) {
    if (!/\.tmp$/.test(f)) continue;
    const st = await fs.stat(path.join(dir, f)).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > STALE_TMP_MS) await fs.rm(path.join(dir, f), { force: true });
  }
  const parts: string[] = [];
  for (const p of meta.parts) {
    const st = await fs.stat(path.join(dir, p)).catch(() => undefined);
    if (st && st.size > 0) parts.push(p);
  }
  if (!parts.length) throw new PermanentJobError(`recording ${id} has no media (parts: ${meta.parts.join(", ") || "none"})`);
  const expectedS = Math.max(0.1, (Date.parse(meta.stoppedAt ?? meta.startedAt) - Date.parse(meta.startedAt)) / 1000);
  const tmp = (name: string) => path.join(dir, `.${name}.${process.pid}.tmp`);
  const done = async (name: string) => fs.rename(tmp(name), path.join(dir, name));

  // 1. Seekable WebM (VP8) or MP4 (H.264): the part(s) one after the other, video copied, the PCM mix encoded.
  let input = ["-i", path.join(dir, parts[0]!)];
  if (parts.length > 1) {
    // A part cut off by its recorder's death has no duration in it: give the concat demuxer each
    // part's real end (last packet + a frame), or the next part would overlap it.
    const frameS = 1 / meta.output.fps;
    const lines: string[] = [];
    for (const p of parts) {
      const end = await mediaEnd(s.ffmpegPath, path.join(dir, p), s.signal);
      lines.push(`file '${p}'`, `duration ${(end + frameS).toFixed(3)}`);
    }
    const list = path.join(dir, "parts.txt");
    await fs.writeFile(list, lines.join("\n") + "\n");
    input = ["-f", "concat", "-safe", "0", "-i", list];
  }
  const share = (from: number, weight: number, total: number) => (t: number) => progress(from + weight * Math.min(1, t / total));
  // An H.264 composite goes into an MP4 as it is (no second video encode); WebM cannot hold it.
  const h264 = meta.output.codec === "h264";
  if (h264) {
    await runFfmpeg(
      s.ffmpegPath,
      [...input, "-map", "0", "-c:v", "copy", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-f", "mp4", "-y", tmp("recording.mp4")],
      share(0, WEIGHTS.webm + WEIGHTS.mp4, expectedS),
      s.signal,
    );
    await done("recording.mp4");
  } else {
    await runFfmpeg(s.ffmpegPath, [...input, "-map", "0", "-c:v", "copy", "-c:a", "libopus", "-b:a", `${s.audioKbps}k`, "-f", "webm", "-y", tmp("recording.webm")], share(0, WEIGHTS.webm, expectedS), s.signal);
    await done("recording.webm");
  }
  const main = path.join(dir, h264 ? "recording.mp4" : "recording.webm");
  const duration = await probeDuration(s.ffmpegPath, main);
  let at = WEIGHTS.webm;

  // 2. MP4 for players without WebM (Safari, many TVs). Fast-start so it plays while downloading.
  if (s.mp4 && !h264) {
    await runFfmpeg(
      s.ffmpegPath,
      ["-i", main, "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-f", "mp4", "-y", tmp("recording.mp4")],
      share(at, WEIGHTS.mp4, duration),
      s.signal,
    );
    await done("recording.mp4");
  }
  at += WEIGHTS.mp4;

  // 3. Poster: the picture from the middle of the meeting (or its first picture when the video ends
  // before the middle); a recording without any picture is finished without one.
  const poster = (seek: string[]) =>
    runFfmpeg(s.ffmpegPath, [...seek, "-i", main, "-frames:v", "1", "-q:v", "3", "-f", "image2", "-y", tmp("poster.jpg")], () => {}, s.signal)
      .then(() => fs.stat(tmp("poster.jpg")).then(() => true, () => false));
  const mid = await poster(["-ss", (duration / 2).toFixed(2)]);
  if (mid || (await poster([]))) await done("poster.jpg");
  await progress(1);

  const files: RecordingFile[] = [];
  for (const [name, type] of Object.entries(FILE_TYPES)) {
    const st = await fs.stat(path.join(dir, name)).catch(() => undefined);
    if (st) files.push({ name, bytes: st.size, type });
  }
  const finished = await store.update(id, (m) => {
    m.status = "done";
    m.progress = 1;
    m.duration = Math.round(duration * 1000) / 1000;
    m.files = files;
    m.size = files.reduce((a, f) => a + f.bytes, 0);
    m.finishedAt = new Date().toISOString();
    delete m.error;
  });
  if (!finished) throw new PermanentJobError(`recording ${id} was deleted while it was processed`);
  // The WebM (or, for H.264, the MP4) holds the same media as the live parts, so they go, with any try's leftovers.
  for (const p of [...meta.parts, "parts.txt"]) await fs.rm(path.join(dir, p), { force: true });
  for (const f of await fs.readdir(dir)) if (f.endsWith(".tmp")) await fs.rm(path.join(dir, f), { force: true });
  return finished;
}

/**
 * Runs ffmpeg to completion at low CPU priority (live calls come first), reporting the media time
 * reached (seconds) from its `-progress` output; killed when it reports nothing for a while (hung).
 */
export async function runFfmpeg(ffmpegPath: string, args: string[], onTime: (seconds: number) => unknown, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) throw new Error("aborted");
  let lineBuf = "";
  const r = await runFfmpegOnce(ffmpegPath, "postprocess", ["-nostats", "-progress", "pipe:1", ...args], {
    signal,
    lowPriority: true,
    idleTimeoutMs: QUIET_LIMIT_MS,
    onStdout: (d: Buffer) => {
      lineBuf += d.toString();
      const lines = lineBuf.split("\n");
      lineBuf = lines.pop()!;
      for (const line of lines) {
        const m = /^out_time_(?:us|ms)=(\d+)/.exec(line);
        // A failing progress report (Redis away, job removed) must not fail the job, let alone the process.
        if (m) Promise.resolve(Number(m[1]) / 1e6).then(onTime).catch(() => {});
      }
    },
  });
  if (r.killed === "aborted") throw new Error("aborted");
  if (r.code === 0) return;
  const why = r.killed === "idle" ? `no progress for ${QUIET_LIMIT_MS / 1000} s: killed` : r.stderrTail.trim().split("\n").slice(-3).join(" | ");
  throw new Error(`ffmpeg ${args.at(-1)} failed (${r.signal ?? `exit ${r.code}`}): ${why}`);
}

/** Timestamp (s) of the last packet of a possibly truncated file, by reading it through. */
async function mediaEnd(ffmpegPath: string, file: string, signal?: AbortSignal): Promise<number> {
  let end = 0;
  await runFfmpeg(ffmpegPath, ["-i", file, "-map", "0", "-c", "copy", "-f", "null", "-"], (t) => (end = Math.max(end, t)), signal);
  return end;
}

/** Duration of a media file in seconds, from ffmpeg's own report of the input. */
export async function probeDuration(ffmpegPath: string, file: string): Promise<number> {
  // No output named: ffmpeg reports the input and exits 1, as expected here.
  const r = await runFfmpegOnce(ffmpegPath, "probe", ["-i", file], { logLevel: "info", timeoutMs: 30_000 });
  const m = /Duration: (\d+):(\d+):(\d+(?:\.\d+)?)/.exec(r.stderrTail);
  if (!m) throw new Error(`no duration in ${path.basename(file)}: ${r.stderrTail.trim().split("\n").slice(-2).join(" | ")}`);
  return Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
}
