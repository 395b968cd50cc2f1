// The "libraries alone" baseline: the mixer's media work done by the same libraries the server
// uses, in one process with nothing else — no WebRTC, no packets, no children, no pipes. n looped
// camera files decoded (FFmpeg's vp8/h264 decoders, one thread each), each scaled to its tile's
// letterbox (libswscale) and copied into the canvas, the canvas encoded in real time with exactly
// the server's encoder settings (LibRungEncoder.rungOpen, FFmpeg's libvpx/libx264); n Opus files
// decoded, summed and encoded once (libopus, the server's in-process Opus). Decode, scale and encode
// run on libuv's threadpool as in the server. Prints `frames=<n>` (canvases encoded) every 500 ms.
//
// Run by bench/cpu.ts (--baselines libs): node --import tsx bench/libsAlone.ts '<json settings>'
import fs from "node:fs";
import { MediaClock } from "../mixer/clock.ts";
import { avccToAnnexB, FlvReader } from "../mixer/flv.ts";
import { IvfReader } from "../mixer/ivf.ts";
import { gridLayout, letterbox } from "../mixer/layout.ts";
import { closeDecoder, decodeFrame, encodeFrame, openDecoder, openEncoder, scaler, videoFrame, type Frame, type OpenedEncoder, type SoftwareScaleContext } from "../mixer/libav.ts";
import { rungOpen } from "../mixer/LibRungEncoder.ts";
import { isOpusHeaderPacket, OggPacketReader } from "../mixer/ogg.ts";
import { InProcessOpusDecoder, InProcessOpusEncoder } from "../mixer/opusInProcess.ts";
import type { EncoderSettings, Rung } from "../mixer/RungEncoder.ts";
import { blitCentered } from "../mixer/yuv.ts";

export interface LibsAloneSettings {
  inputs: { video: string; audio: string }[];
  codec: "vp8" | "h264";
  width: number;
  height: number;
  fps: number;
  kbps: number;
  audioKbps: number;
  keyframeIntervalS: number;
  vp8CpuUsed?: number;
  /** A second rung encoded from the scaled canvas (the bench's mixed codec). */
  half?: Rung;
}

/** Each camera file's frames, whole (IVF for VP8; FLV for H.264, made Annex-B with SPS/PPS on keyframes). */
function cameraFrames(file: string, codec: "vp8" | "h264"): Buffer[] {
  const bytes = fs.readFileSync(file);
  if (codec === "vp8") return new IvfReader().push(bytes).map((f) => f.data);
  const flv = new FlvReader();
  return flv.push(bytes).map((f) => avccToAnnexB(f.data, flv.config?.naluLengthSize ?? 4, f.isKeyframe && flv.config ? [...flv.config.sps, ...flv.config.pps] : []));
}

function opusPackets(file: string): Buffer[] {
  return new OggPacketReader().push(fs.readFileSync(file)).map((p) => p.data).filter((p) => !isOpusHeaderPacket(p));
}

interface Camera {
  frames: Buffer[];
  next: number;
  dec: ReturnType<typeof openDecoder>;
  sws: SoftwareScaleContext | undefined;
  scaled: Frame | undefined;
  /** Where its picture goes: the tile, and the letterbox inside it. */
  rect: { x: number; y: number; w: number; h: number };
  box: { w: number; h: number };
  latest: Buffer | undefined;
  busy: boolean;
}

async function decodeNext(c: Camera): Promise<void> {
  c.busy = true;
  try {
    const f = await decodeFrame(c.dec, c.frames[c.next++ % c.frames.length]!);
    if (!f) return;
    if (!c.sws) {
      const lb = letterbox(f.width, f.height, c.rect.w, c.rect.h);
      c.box = { w: lb.w, h: lb.h };
      c.sws = scaler(f.width, f.height, c.box.w, c.box.h);
      c.scaled = videoFrame(c.box.w, c.box.h);
    }
    c.scaled!.makeWritable();
    await c.sws.scaleFrame(c.scaled!, f);
    c.latest = c.scaled!.toBuffer();
  } finally {
    c.busy = false;
  }
}

export function runLibsAlone(s: LibsAloneSettings): () => void {
  const enc: EncoderSettings = { ffmpegPath: "", codec: s.codec, width: s.width, height: s.height, fps: s.fps, kbps: s.kbps, keyframeIntervalS: s.keyframeIntervalS, keyframeMinIntervalMs: 0, vp8CpuUsed: s.vp8CpuUsed };
  const rects = gridLayout(s.inputs.length, s.width, s.height);
  const cams: Camera[] = s.inputs.map((x, i) => {
    const frames = cameraFrames(x.video, s.codec);
    const r = rects[i]!;
    return { frames, next: 0, dec: openDecoder(s.codec), sws: undefined, scaled: undefined, rect: r, box: { w: r.w, h: r.h }, latest: undefined, busy: false };
  });
  const canvas = Buffer.alloc((s.width * s.height * 3) / 2);
  canvas.fill(16, 0, s.width * s.height);
  canvas.fill(128, s.width * s.height);
  const top = openEncoder(rungOpen(enc, { width: s.width, height: s.height, kbps: s.kbps }));
  const half = s.half ? { enc: openEncoder(rungOpen({ ...enc, codec: "vp8" }, s.half)), sws: scaler(s.width, s.height, s.half.width, s.half.height) } : undefined;
  let encoding = false;
  let frames = 0;
  let pts = 0;
  const encodeCanvas = async (e: OpenedEncoder, n: number) => {
    e.frame.pts = BigInt(n);
    await encodeFrame(e, e.frame, n === 0);
  };
  const video = new MediaClock(1000 / s.fps, () => {
    for (const c of cams) if (!c.busy) void decodeNext(c);
    for (const c of cams) if (c.latest) blitCentered(canvas, s.width, s.height, c.rect, c.latest, c.box.w, c.box.h);
    if (encoding) return; // the last canvas still encoding: this one is left out, as the server does
    encoding = true;
    const n = pts++;
    top.frame.makeWritable();
    top.frame.fromBuffer(canvas);
    const jobs = [encodeCanvas(top, n)];
    if (half) {
      half.enc.frame.makeWritable();
      jobs.push(half.sws.scaleFrame(half.enc.frame, top.frame).then(() => encodeCanvas(half.enc, n)));
    }
    void Promise.all(jobs).then(() => {
      frames++;
      encoding = false;
    });
  });
  const mics = s.inputs.map((x) => ({ packets: opusPackets(x.audio), next: 0, dec: new InProcessOpusDecoder() }));
  const mixEnc = new InProcessOpusEncoder(s.audioKbps);
  const sum = new Int32Array(960);
  for (const m of mics) m.dec.on("samples", (pcm) => { for (let i = 0; i < pcm.length && i < 960; i++) sum[i]! += pcm[i]!; });
  const out = new Int16Array(960);
  const audio = new MediaClock(20, (t) => {
    sum.fill(0);
    for (const m of mics) m.dec.decode(m.packets[m.next++ % m.packets.length]!);
    for (let i = 0; i < 960; i++) out[i] = Math.max(-32768, Math.min(32767, sum[i]!));
    mixEnc.encode(out, t.index);
  }, undefined, 5);
  video.begin();
  audio.begin();
  const report = setInterval(() => console.log(`frames=${frames}`), 500);
  return () => {
    clearInterval(report);
    video.stop();
    audio.stop();
    for (const c of cams) closeDecoder(c.dec);
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const stop = runLibsAlone(JSON.parse(process.argv[2]!) as LibsAloneSettings);
  process.on("SIGTERM", () => {
    stop();
    process.exit(0);
  });
}
