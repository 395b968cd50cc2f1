// FFmpeg's libraries in the server process (node-av: N-API bindings to FFmpeg 8.1, prebuilt per
// platform). Only what the composite's encoders need is here: an encoder opened with options that
// are checked (an option the codec does not know is an error, not silently dropped), a scaler, and
// FFmpeg's own logging kept to errors. The encoders' input is the server's own canvas, never a
// client's bitstream: decoders of what clients send stay in child processes (TileDecoder.ts).
import { Codec, CodecContext, FFmpegError, Frame, getFFmpegInfo, Log, Packet, Rational, SoftwareScaleContext } from "node-av/lib";
import {
  AV_LOG_ERROR,
  AV_OPT_TYPE_STRING,
  AV_PICTURE_TYPE_I,
  AV_PICTURE_TYPE_NONE,
  AV_PIX_FMT_YUV420P,
  AV_CODEC_ID_H264,
  AV_CODEC_ID_VP8,
  AVERROR_EAGAIN,
  AVERROR_EOF,
  SWS_FAST_BILINEAR,
  type FFEncoderCodec,
} from "node-av/constants";

export { FFmpegError, Frame, Packet };

Log.setLevel(AV_LOG_ERROR);


export interface OpenedEncoder {
  ctx: CodecContext;
  frame: Frame;
  packet: Packet;
  /**
   * avcodec_open2 on the threadpool (libvpx and x264 take 50–300 ms to open a 720p encoder, which
   * on the event loop held every room of the process). encodeFrame waits for it; a failed open
   * rejects there, and closeEncoder frees only after it settles.
   */
  opened: Promise<void>;
}

/** A yuv420p frame of w×h with its own buffers. */
export function videoFrame(width: number, height: number): Frame {
  const f = new Frame();
  f.alloc();
  f.width = width;
  f.height = height;
  f.format = AV_PIX_FMT_YUV420P;
  FFmpegError.throwIfError(f.getBuffer(0), "av_frame_get_buffer");
  return f;
}

export interface EncoderOpen {
  /** FFmpeg's encoder name: libvpx, libx264. */
  name: string;
  width: number;
  height: number;
  fps: number;
  kbps: number;
  gop: number;
  /** The codec's private options (av_opt_set on the context and its children): each must exist. */
  options: Record<string, string>;
  level?: number;
}

/**
 * An encoder whose options are checked now (throws, naming the option, when the codec refuses one
 * of `options`) and which opens on the threadpool (`opened`).
 */
export function openEncoder(o: EncoderOpen): OpenedEncoder {
  const codec = Codec.findEncoderByName(o.name as FFEncoderCodec);
  if (!codec) throw new Error(`this FFmpeg build has no ${o.name} encoder`);
  const ctx = new CodecContext();
  ctx.allocContext3(codec);
  ctx.width = o.width;
  ctx.height = o.height;
  ctx.pixelFormat = AV_PIX_FMT_YUV420P;
  ctx.timeBase = new Rational(1, o.fps);
  ctx.framerate = new Rational(o.fps, 1);
  const bps = BigInt(o.kbps * 1000);
  ctx.bitRate = bps;
  ctx.rcMaxRate = bps;
  ctx.rcBufferSize = o.kbps * 1000;
  ctx.gopSize = o.gop;
  ctx.maxBFrames = 0;
  ctx.threadCount = 1;
  if (o.level !== undefined) ctx.level = o.level;
  for (const [k, v] of Object.entries(o.options)) {
    // Options go on the context (not as a dictionary to open2, whose leftovers node-av 6.1.1 frees twice).
    const r = ctx.setOption(k, v, AV_OPT_TYPE_STRING);
    if (r < 0) {
      ctx.freeContext();
      throw new Error(`${o.name} refused option ${k}=${v}: ${new FFmpegError(r).message}`);
    }
  }
  const opened = ctx.open2(codec, null).then((r) => {
    if (r < 0) throw new Error(`${o.name} did not open: ${new FFmpegError(r).message}`);
  });
  // Its failure is the first encodeFrame's error (and a restart of the rung), not an unhandled one.
  opened.catch(() => {});
  const packet = new Packet();
  packet.alloc();
  return { ctx, frame: videoFrame(o.width, o.height), packet, opened };
}

export interface EncodedPacket {
  data: Buffer;
  isKeyframe: boolean;
  /** The frame's pts (frames since the encoder opened). */
  pts: number;
}

/**
 * Encodes `frame` (pts already set) on the threadpool; a keyframe if `keyframe`. The packets it
 * gives back at once (one per frame with these settings: no lookahead, no B-frames).
 */
export async function encodeFrame(e: OpenedEncoder, frame: Frame, keyframe: boolean): Promise<EncodedPacket[]> {
  await e.opened;
  frame.pictType = keyframe ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
  const sent = await e.ctx.sendFrame(frame);
  if (sent < 0 && sent !== AVERROR_EAGAIN) throw new Error(`encode failed: ${new FFmpegError(sent).message}`);
  const out: EncodedPacket[] = [];
  for (;;) {
    const r = e.ctx.receivePacketSync(e.packet);
    if (r === AVERROR_EAGAIN || r < 0) {
      if (r !== AVERROR_EAGAIN && r !== AVERROR_EOF) throw new Error(`encode failed: ${new FFmpegError(r).message}`);
      break;
    }
    const data = e.packet.data;
    if (data) out.push({ data: Buffer.from(data), isKeyframe: e.packet.isKeyframe, pts: Number(e.packet.pts) });
    e.packet.unref();
  }
  return out;
}

/** Frees the encoder once its open has settled (never under an open still on the threadpool). */
export function closeEncoder(e: OpenedEncoder): void {
  const free = () => {
    e.packet.free();
    e.frame.free();
    e.ctx.freeContext();
  };
  e.opened.then(free, free);
}

/** A scaler from w×h yuv420p to the rung's size (fast bilinear, as the children's `scale` filter). */
export function scaler(srcW: number, srcH: number, dstW: number, dstH: number): SoftwareScaleContext {
  const s = new SoftwareScaleContext();
  s.getContext(srcW, srcH, AV_PIX_FMT_YUV420P, dstW, dstH, AV_PIX_FMT_YUV420P, SWS_FAST_BILINEAR);
  FFmpegError.throwIfError(s.initContext(), "sws_init_context");
  return s;
}

export type { SoftwareScaleContext };

export interface OpenedDecoder {
  ctx: CodecContext;
  packet: Packet;
  frame: Frame;
}

/**
 * A VP8 or H.264 decoder in this process, one thread. Only for trusted input (the benchmark's
 * baseline, our own fixtures): what clients send is decoded in child processes (TileDecoder.ts).
 */
export function openDecoder(codec: "vp8" | "h264"): OpenedDecoder {
  const c = Codec.findDecoder(codec === "h264" ? AV_CODEC_ID_H264 : AV_CODEC_ID_VP8);
  if (!c) throw new Error(`this FFmpeg build has no ${codec} decoder`);
  const ctx = new CodecContext();
  ctx.allocContext3(c);
  ctx.threadCount = 1;
  FFmpegError.throwIfError(ctx.open2Sync(c, null), "avcodec_open2");
  const packet = new Packet();
  packet.alloc();
  const frame = new Frame();
  frame.alloc();
  return { ctx, packet, frame };
}

/** Decodes one frame's bitstream on the threadpool; the picture (the decoder's frame) or undefined. */
export async function decodeFrame(d: OpenedDecoder, data: Buffer): Promise<Frame | undefined> {
  d.packet.data = data;
  const sent = await d.ctx.sendPacket(d.packet);
  d.packet.unref();
  if (sent < 0 && sent !== AVERROR_EAGAIN) return undefined;
  d.frame.unref();
  const r = d.ctx.receiveFrameSync(d.frame);
  return r >= 0 ? d.frame : undefined;
}

export function closeDecoder(d: OpenedDecoder): void {
  d.packet.free();
  d.frame.free();
  d.ctx.freeContext();
}

/** The FFmpeg the libraries are (for the startup log). */
export function libavVersion(): string {
  return getFFmpegInfo().version;
}
