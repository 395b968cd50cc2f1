// The compositor: on its own clock it reads every input's latest-frame slot, lays the tiles
// out in a grid and hands one canvas to the one encoder. It never waits for an input: a
// stalled tile keeps its last frame, then shows the placeholder. Membership changes take
// effect at the next tick; nothing restarts.
import { metrics } from "../server/metrics.ts";
import { MediaClock, type Tick } from "./clock.ts";
import { CompositeEncoder, type EncoderSettings, type EncodedFrame } from "./CompositeEncoder.ts";
import { gridLayout, sameRect, type Rect } from "./layout.ts";
import type { VideoInput } from "./VideoInput.ts";
import { PLACEHOLDER_YUV, renderPlaceholder } from "./placeholder.ts";
import { blitCentered, fillRect, frameBytes } from "./yuv.ts";

const BLACK_YUV = [16, 128, 128] as const;

interface Slot {
  input: VideoInput;
  rect: Rect | undefined;
  drawnSeq: number;
  showingPlaceholder: boolean;
  /** The named placeholder picture for the current tile size, once rendered. */
  placeholder: Buffer | undefined;
}

export interface CompositorSettings extends EncoderSettings {
  stallTimeoutMs: number;
}

export class VideoCompositor {
  private readonly canvas: Buffer;
  private readonly slots: Slot[] = [];
  private readonly clock: MediaClock;
  private layoutDirty = true;
  readonly encoder: CompositeEncoder;
  ticks = 0;

  constructor(
    private readonly s: CompositorSettings,
    onFrame: (frame: EncodedFrame) => void,
  ) {
    this.canvas = Buffer.alloc(frameBytes(s.width, s.height));
    fillRect(this.canvas, s.width, s.height, { x: 0, y: 0, w: s.width, h: s.height }, ...BLACK_YUV);
    this.encoder = new CompositeEncoder(s);
    this.encoder.on("frame", onFrame);
    this.clock = new MediaClock(1000 / s.fps, (t) => this.tick(t));
    this.clock.begin();
  }

  add(input: VideoInput): void {
    this.slots.push({ input, rect: undefined, drawnSeq: -1, showingPlaceholder: false, placeholder: undefined });
    this.layoutDirty = true;
  }

  remove(participantId: string): void {
    const i = this.slots.findIndex((s) => s.input.participantId === participantId);
    if (i >= 0) this.slots.splice(i, 1);
    this.layoutDirty = true;
  }

  /** The current tile of each participant, in grid order (for tests and the admin view). */
  /** When canvas tick `tick` was composed (its clock deadline), performance.now() ms. */
  tickTime(tick: number): number {
    return this.clock.dueTime(tick);
  }

  layout(): { participantId: string; rect: Rect }[] {
    return this.slots.filter((s) => s.rect).map((s) => ({ participantId: s.input.participantId, rect: s.rect! }));
  }

  private applyLayout(): void {
    const { width: W, height: H } = this.s;
    const rects = gridLayout(this.slots.length, W, H);
    fillRect(this.canvas, W, H, { x: 0, y: 0, w: W, h: H }, ...BLACK_YUV);
    this.slots.forEach((slot, i) => {
      const r = rects[i];
      if (!sameRect(slot.rect, r)) {
        slot.input.setTileSize(r.w, r.h);
        if (slot.rect?.w !== r.w || slot.rect?.h !== r.h) this.preparePlaceholder(slot, r);
      }
      slot.rect = r;
      slot.drawnSeq = -1;
      slot.showingPlaceholder = false;
    });
    this.layoutDirty = false;
  }

  private preparePlaceholder(slot: Slot, r: Rect): void {
    slot.placeholder = undefined;
    void renderPlaceholder(this.s.ffmpegPath, slot.input.name, r.w, r.h).then((buf) => {
      if (!buf || slot.rect?.w !== r.w || slot.rect?.h !== r.h) return;
      slot.placeholder = buf;
      slot.showingPlaceholder = false; // redraw with the name at the next tick if it is showing
    });
  }

  private tick(t: Tick): void {
    this.ticks++;
    if (t.skipped) metrics.compositeLateTicks.inc({}, t.skipped);
    if (this.layoutDirty) this.applyLayout();
    const { width: W, height: H } = this.s;
    const now = performance.now();
    for (const slot of this.slots) {
      const r = slot.rect!;
      const f = slot.input.latest;
      const stalled = !f || slot.input.cameraOff || now - f.at > this.s.stallTimeoutMs;
      if (stalled) {
        if (!slot.showingPlaceholder) {
          if (slot.placeholder) blitCentered(this.canvas, W, H, r, slot.placeholder, r.w, r.h);
          else fillRect(this.canvas, W, H, r, ...PLACEHOLDER_YUV);
          slot.showingPlaceholder = true;
        }
        continue;
      }
      if (f.seq === slot.drawnSeq && !slot.showingPlaceholder) continue;
      if (f.width !== r.w || f.height !== r.h) fillRect(this.canvas, W, H, r, ...BLACK_YUV);
      blitCentered(this.canvas, W, H, r, f.data, f.width, f.height);
      slot.drawnSeq = f.seq;
      slot.showingPlaceholder = false;
    }
    if (this.encoder.encode(this.canvas, t.index)) metrics.compositeFrames.inc();
  }

  close(): void {
    this.clock.stop();
    this.encoder.close();
  }
}
