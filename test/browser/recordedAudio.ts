// Tone levels of what a page receives, measured offline: headless Firefox has no sound device (its
// AudioContext never runs), so record #mixed's audio with MediaRecorder and decode it with ffmpeg.
// Works the same in Chromium, so tests can use one method for both engines.
import { runFfmpeg } from "../support/ffmpegRun.ts";
import { s16leToInt16, toneLevelsDb } from "../support/tones.ts";
import type { BrowserParticipant } from "./pages.ts";

const RATE = 48_000;
const SKIP_S = 0.3; // the encoder's start (priming, ramp-up) is not the tone's level

/** 48 kHz mono PCM of `ms` of #mixed's audio as the page receives it. */
export async function recordedPcm(p: BrowserParticipant, ms = 3000): Promise<Int16Array> {
  const { mime, b64 } = await p.evaluate(async (ms: number) => {
    const s = (document.getElementById("mixed") as HTMLVideoElement).srcObject as MediaStream | null;
    const tracks = s?.getAudioTracks() ?? [];
    if (!tracks.length) throw new Error("#mixed has no audio track");
    const mime = ["audio/ogg;codecs=opus", "audio/webm;codecs=opus", "audio/webm"].find((m) => MediaRecorder.isTypeSupported(m));
    const rec = new MediaRecorder(new MediaStream(tracks), mime ? { mimeType: mime } : {});
    const chunks: Blob[] = [];
    rec.ondataavailable = (e) => chunks.push(e.data);
    const stopped = new Promise((r) => (rec.onstop = r));
    rec.start();
    await new Promise((r) => setTimeout(r, ms));
    rec.stop();
    await stopped;
    const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer());
    let bin = "";
    for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return { mime: rec.mimeType, b64: btoa(bin) };
  }, ms);
  const r = await runFfmpeg(["-loglevel", "error", "-i", "pipe:0", "-ac", "1", "-ar", String(RATE), "-f", "s16le", "pipe:1"], Buffer.from(b64, "base64"));
  if (r.code !== 0) throw new Error(`${p.id}: decoding the ${mime} recording failed: ${r.stderr.trim()}`);
  return s16leToInt16(r.stdout);
}

/** dBFS of each frequency in `ms` of #mixed's audio (first 300 ms skipped). */
export async function recordedToneLevels(p: BrowserParticipant, freqs: number[], ms = 3000): Promise<number[]> {
  const pcm = await recordedPcm(p, ms);
  const from = Math.round(SKIP_S * RATE);
  if (pcm.length <= from) throw new Error(`${p.id}: only ${pcm.length} samples recorded in ${ms} ms`);
  return toneLevelsDb(pcm.subarray(from), RATE, freqs);
}
