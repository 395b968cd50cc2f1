// The compositor: on its own clock it reads every input's latest-frame slot, lays the tiles
// out in a grid and hands one canvas to the one encoder. It never waits for an input: a
// stalled tile keeps its last frame, then shows the placeholder. Membership changes take
// effect at the next tick; nothing restarts.
import { metrics } from "../server/metrics.ts";
import { MediaClock, type Tick } from "./clock.ts";
import { CompositeEncoder, type EncoderSettings, type EncodedFrame } from "./CompositeEncoder.ts";
import { gridLayout, sameRect, type Rect } from "./layout.ts";
import type { VideoInput } from "./VideoInput.ts";
import { blitCentered, fillRect, frameBytes } from "./yuv.ts";

/** Dark grey: distinct from the black letterbox bars around a picture. */
export const PLACEHOLDER_YUV = [48, 128, 128] as const;
const BLACK_YUV = [16, 128, 128] as const;

interface Slot {
  input: VideoInput;
  rect: Rect | undefined;
  drawnSeq: number;
  showingPlaceholder: boolean;
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
    this.slots.push({ input, rect: undefined, drawnSeq: -1, showingPlaceholder: false });
    this.layoutDirty = true;
  }

  remove(participantId: string): void {
    const i = this.slots.findIndex((s) => s.input.participantId === participantId);
    if (i >= 0) this.slots.splice(i, 1);
    this.layoutDirty = true;
  }

  /** The current tile of each participant, in grid order (for tests and the admin view). */
  layout(): { participantId: string; rect: Rect }[] {
    return this.slots.filter((s) => s.rect).map((s) => ({ participantId: s.input.participantId, rect: s.rect! }));
  }

  private applyLayout(): void {
    const { width: W, height: H } = this.s;
    const rects = gridLayout(this.slots.length, W, H);
    fillRect(this.canvas, W, H, { x: 0, y: 0, w: W, h: H }, ...BLACK_YUV);
    this.slots.forEach((slot, i) => {
      const r = rects[i];
      if (!sameRect(slot.rect, r)) slot.input.setTileSize(r.w, r.h);
      slot.rect = r;
      slot.drawnSeq = -1;
      slot.showingPlaceholder = false;
    });
    this.layoutDirty = false;
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
      const stalled = !f || now - f.at > this.s.stallTimeoutMs;
      if (stalled) {
        if (!slot.showingPlaceholder) {
          fillRect(this.canvas, W, H, r, ...PLACEHOLDER_YUV);
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
