// One ffmpeg child that decodes one participant's camera (VP8 or H.264) and scales it, aspect kept and letterboxed,
// to exactly the tile size. Raw yuv420p tiles come back on stdout, one fixed-size frame each.
import { EventEmitter } from "node:events";
import { FfmpegProcess, type FfmpegExit } from "./FfmpegProcess.ts";
import { ivfFileHeader, ivfFrame } from "./ivf.ts";
import { frameBytes } from "./yuv.ts";
import { vp8KeyframeSize } from "./frameSize.ts";
import type { VideoCodec } from "./CompositeEncoder.ts";
import type { Vp8Frame } from "./vp8FrameAssembler.ts";

/** An access unit delimiter after each H.264 frame tells ffmpeg's parser the frame is whole (it would wait for the next one). */
const H264_AUD = Buffer.from([0, 0, 0, 1, 9, 0xf0]);

export class TileDecoder extends EventEmitter<{ frame: [Buffer]; exit: [FfmpegExit] }> {
  private readonly proc: FfmpegProcess;
  private started = false;
  private pts = 0;
  private readonly size: number;
  private buffers: [Buffer, Buffer];
  private fill = 0;
  framesOut = 0;

  constructor(
    ffmpegPath: string,
    readonly participantId: string,
    readonly width: number,
    readonly height: number,
    private readonly codec: VideoCodec = "vp8",
  ) {
    super();
    const w = width;
    const h = height;
    const vf = `scale=${w}:${h}:force_original_aspect_ratio=decrease:flags=bilinear,pad=${w}:${h}:(ow-iw)/2:(oh-ih)/2:color=black,format=yuv420p`;
    this.proc = new FfmpegProcess(ffmpegPath, `tile-decoder`, [
      // Small probe so the first frame is decoded at once; no -fflags nobuffer: it would drop the probed keyframe.
      "-probesize", "32", "-analyzeduration", "0", "-threads", "1", "-f", codec === "h264" ? "h264" : "ivf", "-i", "pipe:0",
      "-vf", vf, "-vsync", "passthrough", "-f", "rawvideo", "-flush_packets", "1", "pipe:1",
    ]);
    this.size = frameBytes(w, h);
    this.buffers = [Buffer.alloc(this.size), Buffer.alloc(this.size)];
    this.proc.stdout.on("data", (chunk: Buffer) => this.onData(chunk));
    this.proc.on("exit", (e) => this.emit("exit", e));
  }

  get hasStarted(): boolean {
    return this.started;
  }

  /** Feeds one frame; returns false if it was not taken (no keyframe yet, or the child is gone/backed up). */
  decode(frame: Vp8Frame): boolean {
    if (this.codec === "h264") {
      if (!this.started && !frame.isKeyframe) return false;
      this.started = true;
      return this.proc.write(Buffer.concat([frame.data, H264_AUD]), 1 << 20);
    }
    if (!this.started) {
      const dims = vp8KeyframeSize(frame.data);
      if (!frame.isKeyframe || !dims) return false;
      if (!this.proc.write(ivfFileHeader({ width: dims.width, height: dims.height, timebaseDen: 30 }))) return false;
      this.started = true;
    }
    // Over ~1 MB queued means the decoder is far behind: drop rather than grow latency without bound.
    return this.proc.write(ivfFrame(frame.data, this.pts++), 1 << 20);
  }

  private onData(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      const target = this.buffers[0];
      const n = Math.min(this.size - this.fill, chunk.length - off);
      chunk.copy(target, this.fill, off, off + n);
      this.fill += n;
      off += n;
      if (this.fill === this.size) {
        this.fill = 0;
        this.buffers = [this.buffers[1], target];
        this.framesOut++;
        this.emit("frame", target);
      }
    }
  }

  get alive(): boolean {
    return this.proc.alive;
  }

  close(): void {
    this.proc.removeAllListeners("exit");
    this.proc.close();
  }
}
