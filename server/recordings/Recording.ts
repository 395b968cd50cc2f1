// One room's recording while it runs: taps the room's mixer (encoded composite frames and the
// full audio mix) into a Recorder, and keeps the metadata file current (parts, who was there).
import type { EncodedFrame } from "../../mixer/CompositeEncoder.ts";
import type { Mixer, MixerTap } from "../../mixer/Mixer.ts";
import { Recorder } from "../../mixer/Recorder.ts";
import { logger } from "../../telemetry/log.ts";
import type { Room } from "../Room.ts";
import type { RecordingMeta, RecordingStore } from "./RecordingStore.ts";

const log = logger("recording");

export interface RecordingSettings {
  ffmpegPath: string;
}

export class Recording {
  private readonly recorder: Recorder;
  private readonly tap: MixerTap;
  private readonly startedAtMs: number;
  private saving: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private readonly onFrame = (f: EncodedFrame) => this.recorder.videoFrame(f);
  private readonly onAudio = (pcm: Int16Array, skipped: number, due: number) => this.recorder.audioBlock(pcm, skipped, due);
  private readonly onJoined = (id: string, name: string) => this.note("joined", id, name);
  private readonly onLeft = (id: string, name: string) => this.note("left", id, name);

  constructor(
    readonly meta: RecordingMeta,
    private readonly store: RecordingStore,
    private readonly room: Room,
    mixer: Mixer,
    s: RecordingSettings,
  ) {
    this.startedAtMs = Date.parse(meta.startedAt);
    for (const p of room.list()) this.note("present", p.id, p.name);
    this.recorder = new Recorder({
      ffmpegPath: s.ffmpegPath,
      width: meta.output.width,
      height: meta.output.height,
      fps: meta.output.fps,
      codec: meta.output.codec ?? "vp8",
      dir: store.dirOf(meta.id),
      tickTime: (tick) => this.tap.tickTime(tick),
    });
    // The recording takes the composite in the server's first codec at the top rung (copied as it
    // is, no second encode) and the full mix; that output keeps encoding while tapped, whoever else takes it.
    this.tap = mixer.tap(meta.output.codec ?? "vp8", this.onFrame, this.onAudio);
    // The recorder asks for a keyframe for each new part; the first one comes from its constructor.
    this.recorder.on("needKeyframe", () => this.tap.requestKeyframe("recording"));
    this.recorder.on("part", () => this.save());
    this.tap.requestKeyframe("recording");
    this.meta.parts = this.recorder.parts;
    room.on("joined", this.onJoined);
    room.on("left", this.onLeft);
    this.save();
  }

  private note(event: "present" | "joined" | "left", id: string, name: string): void {
    this.meta.participants.push({ offsetMs: Date.now() - this.startedAtMs, event, id, name });
    if (event !== "present") this.save();
  }

  private save(): Promise<unknown> {
    const snapshot = structuredClone(this.meta);
    this.saving = this.saving.then(() => this.store.write(snapshot)).catch((err) =>
      log.warn("could not write recording metadata", { recording: this.meta.id, error: (err as Error).message }),
    );
    return this.saving;
  }

  get stats() {
    return { videoFrames: this.recorder.videoFrames, audioBlocks: this.recorder.audioBlocks, droppedWrites: this.recorder.droppedWrites };
  }

  /** Stops taking media, lets ffmpeg close the file, and leaves the recording pending post-processing. */
  async stop(endedBy: NonNullable<RecordingMeta["endedBy"]>): Promise<RecordingMeta> {
    if (this.stopped) return this.meta;
    this.stopped = true;
    this.tap.close();
    this.room.off("joined", this.onJoined);
    this.room.off("left", this.onLeft);
    this.meta.stoppedAt = new Date().toISOString();
    this.meta.endedBy = endedBy;
    await this.recorder.stop();
    this.meta.status = "pending";
    await this.save();
    log.info("recording stopped", { recording: this.meta.id, endedBy, ...this.stats });
    return this.meta;
  }
}
