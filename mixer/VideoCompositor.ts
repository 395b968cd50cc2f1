// The compositor: on its own clock it reads every input's latest-frame slot, lays the tiles
// out (a grid, or one tile large: the speaker or a pinned participant) and hands one canvas to
// the room's encoders (one per codec in use). It never waits for an input: a stalled tile keeps
// its last frame, then shows the placeholder. Every drawn tile gets its name label (rendered once
// per name and tile width) and, while its participant speaks, a highlight border. Membership and
// layout changes take effect at the next tick; nothing restarts.
import { histograms, metrics } from "../telemetry/metrics.ts";
import { MediaClock, type Tick } from "./clock.ts";
import type { EncoderSettings } from "./CompositeEncoder.ts";
import { focusLayout, gridLayout, sameRect, type LayoutKind, type Rect } from "./layout.ts";
import type { VideoInput } from "./VideoInput.ts";
import { PLACEHOLDER_YUV, renderLabel, renderPlaceholder, type Label } from "./placeholder.ts";
import { blitCentered, fillRect, frameBytes } from "./yuv.ts";

const BLACK_YUV = [16, 128, 128] as const;
/** The speaking highlight: amber, RGB (255, 200, 0). */
export const HIGHLIGHT_YUV = [182, 32, 166] as const;

interface Slot {
  input: VideoInput;
  rect: Rect | undefined;
  drawnSeq: number;
  showingPlaceholder: boolean;
  /** The named placeholder picture for the current tile size, once rendered. */
  placeholder: Buffer | undefined;
  /** The name label for the current tile width, once rendered. */
  label: Label | undefined;
  /** Where the label is in the canvas, while it is there: later frames of the tile are copied around it. */
  labelAt: Rect | undefined;
  /**
   * Pictures rendered for this participant, by tile size ("WxH" placeholders, "W" labels; null: none
   * could be made): a layout that comes back (grid → speaker → grid) spawns no renderer again.
   */
  rendered: Map<string, Buffer | Label | null>;
  /** Renders under way, with who wants the result. */
  waiting: Map<string, ((v: Buffer | Label) => void)[]>;
}

export interface CompositorSettings extends EncoderSettings {
  stallTimeoutMs: number;
  /** Name labels on the tiles (default on). */
  labels?: boolean;
  /** Encodes a second of a composite with no live camera and nothing redrawn (default 1; fps or more: every tick). */
  stillFps?: number;
}

/** Label and highlight geometry for a canvas `height` px high: readable when the canvas is shown at half size. */
export function overlayMetrics(height: number): { fontSize: number; margin: number; border: number } {
  const fontSize = Math.max(12, Math.round(height / 30));
  return { fontSize, margin: 2 * Math.round(fontSize / 6), border: Math.max(2, 2 * Math.round(height / 360)) };
}

/** Ticks between two encodes of a composite where nothing changes: `stillFps` a second at `fps`. */
const stillRefreshTicks = (s: CompositorSettings) => Math.max(1, Math.round(s.fps / (s.stillFps ?? 1)));

export class VideoCompositor {
  private readonly canvas: Buffer;
  private readonly slots: Slot[] = [];
  private readonly clock: MediaClock;
  /** When the last canvas went to the encoder (for the frame-gap histogram). */
  private lastFrameAt: number | undefined;
  private layoutDirty = true;
  private kind: LayoutKind = "grid";
  private focus: string | undefined;
  private readonly speaking = new Set<string>();
  /** The tiles changed (after a membership or layout change): participant id → its tile. */
  onTiles: ((tiles: Map<string, Rect>) => void) | undefined;
  ticks = 0;
  /** An encoder waits for a frame (a keyframe due): a still canvas goes to it at once. */
  wantsFrame: (() => boolean) | undefined;
  /** The overload policy's frame rate (undefined: every tick is composed). */
  private fpsCap: number | undefined;
  /** The tick of the last canvas an encoder took, and whether the next must go whatever it shows. */
  private lastSentTick = -Infinity;
  private sendNext = true;
  /** Something was drawn into the canvas since the last one went to the encoders. */
  private changed = true;

  constructor(
    private readonly s: CompositorSettings,
    /** Each composed canvas (reused: copy what you keep); true when an encoder took it. */
    private readonly onCanvas: (canvas: Buffer, tick: number) => boolean,
  ) {
    this.canvas = Buffer.alloc(frameBytes(s.width, s.height));
    fillRect(this.canvas, s.width, s.height, { x: 0, y: 0, w: s.width, h: s.height }, ...BLACK_YUV);
    this.clock = new MediaClock(1000 / s.fps, (t) => this.tick(t), undefined, 0, "video");
    this.clock.begin();
  }

  add(input: VideoInput): void {
    this.slots.push({ input, rect: undefined, drawnSeq: -1, showingPlaceholder: false, placeholder: undefined, label: undefined, labelAt: undefined, rendered: new Map(), waiting: new Map() });
    this.layoutDirty = true;
  }

  remove(participantId: string): void {
    const i = this.slots.findIndex((s) => s.input.participantId === participantId);
    if (i >= 0) this.slots.splice(i, 1);
    this.layoutDirty = true;
  }

  /** The canvas as last composed (yuv420p, live: copy what you keep). For tests and snapshots. */
  get lastCanvas(): Buffer {
    return this.canvas;
  }

  /** The arrangement from the next tick: `focus` is the large tile of speaker/pinned (none: the first tile). */
  setLayout(kind: LayoutKind, focus: string | undefined): void {
    if (kind === this.kind && focus === this.focus) return;
    this.kind = kind;
    this.focus = focus;
    this.layoutDirty = true;
  }

  /**
   * Compose at most `fps` frames a second (the overload policy), leaving ticks out evenly; undefined
   * composes every tick. Receivers see a lower frame rate, never a gap: the RTP timestamps are the ticks'.
   */
  setFrameRate(fps: number | undefined): void {
    this.fpsCap = fps !== undefined && fps < this.s.fps ? fps : undefined;
  }

  /** The next tick goes to the encoders even if nothing changed (a keyframe asked for, a new output). */
  refresh(): void {
    this.sendNext = true;
  }

  /** `id` started or stopped speaking: its tile is redrawn with or without the highlight. */
  setSpeaking(id: string, on: boolean): void {
    if (on === this.speaking.has(id)) return;
    if (on) this.speaking.add(id);
    else this.speaking.delete(id);
    const slot = this.slots.find((x) => x.input.participantId === id);
    if (slot) this.redraw(slot);
  }

  private redraw(slot: Slot): void {
    this.changed = true;
    slot.drawnSeq = -1;
    slot.showingPlaceholder = false;
    slot.labelAt = undefined;
  }

  /** When canvas tick `tick` was composed (its clock deadline), performance.now() ms. */
  tickTime(tick: number): number {
    return this.clock.dueTime(tick);
  }

  /** The current tile of each participant, in slot order (for tests and the admin view). */
  layout(): { participantId: string; rect: Rect }[] {
    return this.slots.filter((s) => s.rect).map((s) => ({ participantId: s.input.participantId, rect: s.rect! }));
  }

  private applyLayout(): void {
    const { width: W, height: H } = this.s;
    const n = this.slots.length;
    const focused = Math.max(0, this.slots.findIndex((x) => x.input.participantId === this.focus));
    const rects = this.kind === "grid" ? gridLayout(n, W, H) : focusLayout(n, focused, W, H);
    fillRect(this.canvas, W, H, { x: 0, y: 0, w: W, h: H }, ...BLACK_YUV);
    this.changed = true;
    this.slots.forEach((slot, i) => {
      const r = rects[i]!;
      if (!sameRect(slot.rect, r)) {
        // The decoder is resized make-before-break: the old-size picture is shown centred until the new one comes.
        slot.input.setTileSize(r.w, r.h);
        if (slot.rect?.w !== r.w || slot.rect?.h !== r.h) slot.placeholder = undefined; // rendered when first shown
        slot.rect = r;
        this.prepareLabel(slot);
      }
      slot.rect = r;
      this.redraw(slot);
    });
    this.layoutDirty = false;
    this.onTiles?.(new Map(this.slots.map((x) => [x.input.participantId, x.rect!])));
  }

  /**
   * `render` once per `key` for this slot (a one-shot ffmpeg child each, so never again for a size
   * seen before); `use` gets the result now if it is known, else when it comes and still fits.
   */
  private once<T extends Buffer | Label>(slot: Slot, key: string, render: () => Promise<T | undefined>, use: (v: T) => void): void {
    const known = slot.rendered.get(key);
    if (known) return use(known as T);
    const waiting = slot.waiting.get(key);
    if (waiting) return void waiting.push(use as (v: Buffer | Label) => void); // under way: told when it lands
    if (known === null) return; // tried, and nothing could be made
    slot.waiting.set(key, [use as (v: Buffer | Label) => void]);
    void render().then((v) => {
      const uses = slot.waiting.get(key) ?? [];
      slot.waiting.delete(key);
      slot.rendered.set(key, v ?? null);
      if (v && this.slots.includes(slot)) for (const u of uses) u(v);
    });
  }

  /**
   * The label is the same whatever the tile (its size follows the canvas, not the tile): rendered
   * once per name at the canvas width, so a layout change spawns no renderer. Only a tile too narrow
   * for the whole name gets a shortened one ("…"), rendered for that width.
   */
  private prepareLabel(slot: Slot): void {
    slot.label = undefined;
    const r = slot.rect;
    if (this.s.labels === false || !r) return;
    const { fontSize, margin } = overlayMetrics(this.s.height);
    if (r.w < fontSize * 4 || r.h < fontSize * 3) return; // too small to carry a readable name
    const maxW = r.w - 2 * margin;
    // Whatever comes back is checked against the tile as it is then (the layout may have moved on).
    const use = (label: Label) => {
      if (slot.rect !== r) return;
      if (label.w > maxW) return this.once(slot, `label ${maxW}`, () => renderLabel(this.s.ffmpegPath, slot.input.name, maxW, fontSize), use);
      slot.label = label;
      this.redraw(slot);
    };
    this.once(slot, "label", () => renderLabel(this.s.ffmpegPath, slot.input.name, this.s.width - 2 * margin, fontSize), use);
  }

  /** The label (bottom-left) and, while speaking, the highlight border over a freshly drawn tile. */
  private decorate(slot: Slot, r: Rect, placeholder: boolean): void {
    const { width: W, height: H } = this.s;
    const { margin, border } = overlayMetrics(H);
    const l = slot.label;
    // The placeholder already shows the name large. Drawn once; the tile's frames are copied around it.
    if (placeholder) slot.labelAt = undefined;
    else if (l && !slot.labelAt && l.h + 2 * margin <= r.h) {
      slot.labelAt = { x: r.x + margin, y: r.y + r.h - margin - l.h, w: l.w, h: l.h };
      blitCentered(this.canvas, W, H, slot.labelAt, l.data, l.w, l.h);
    }
    if (!this.speaking.has(slot.input.participantId)) return;
    for (const edge of [
      { x: r.x, y: r.y, w: r.w, h: border },
      { x: r.x, y: r.y + r.h - border, w: r.w, h: border },
      { x: r.x, y: r.y, w: border, h: r.h },
      { x: r.x + r.w - border, y: r.y, w: border, h: r.h },
    ]) fillRect(this.canvas, W, H, edge, ...HIGHLIGHT_YUV);
  }

  private preparePlaceholder(slot: Slot, r: Rect): void {
    this.once(slot, `${r.w}x${r.h}`, () => renderPlaceholder(this.s.ffmpegPath, slot.input.name, r.w, r.h), (buf) => {
      if (slot.rect?.w !== r.w || slot.rect?.h !== r.h) return;
      slot.placeholder = buf;
      slot.showingPlaceholder = false; // redraw with the name at the next tick if it is showing
    });
  }

  /** Whether tick `index` is one the overload policy's frame rate keeps (evenly spread over the base rate). */
  private kept(index: number): boolean {
    const cap = this.fpsCap;
    if (cap === undefined) return true;
    return Math.floor((index * cap) / this.s.fps) !== Math.floor(((index - 1) * cap) / this.s.fps);
  }

  private tick(t: Tick): void {
    this.ticks++;
    if (t.skipped) metrics.compositeLateTicks.inc({}, t.skipped); // and the gap shows in the frame-gap histogram: a stall is a freeze
    histograms.tickLateness.observe(Math.max(0, performance.now() - t.due) / 1000);
    if (!this.kept(t.index)) {
      metrics.compositeFramesSkipped.inc({ reason: "overload" });
      this.lastFrameAt = undefined;
      return;
    }
    if (this.layoutDirty) this.applyLayout();
    const { width: W, height: H } = this.s;
    const now = performance.now();
    let live = false;
    for (const slot of this.slots) {
      const r = slot.rect!;
      const f = slot.input.latest;
      const stalled = !f || slot.input.cameraOff || now - f.at > this.s.stallTimeoutMs;
      live ||= !stalled;
      if (stalled) {
        if (!slot.showingPlaceholder) {
          this.changed = true;
          if (!slot.placeholder) this.preparePlaceholder(slot, r);
          if (slot.placeholder) blitCentered(this.canvas, W, H, r, slot.placeholder, r.w, r.h);
          else fillRect(this.canvas, W, H, r, ...PLACEHOLDER_YUV);
          this.decorate(slot, r, true);
          slot.showingPlaceholder = true;
        }
        continue;
      }
      if (f.seq === slot.drawnSeq && !slot.showingPlaceholder) continue;
      this.changed = true;
      if (f.width !== r.w || f.height !== r.h) {
        fillRect(this.canvas, W, H, r, ...BLACK_YUV);
        slot.labelAt = undefined;
      }
      blitCentered(this.canvas, W, H, r, f.data, f.width, f.height, slot.labelAt);
      this.decorate(slot, r, false);
      slot.drawnSeq = f.seq;
      slot.showingPlaceholder = false;
    }
    // No live camera (cameras off, mic-only rooms, stalled inputs) and nothing redrawn: the same
    // picture is encoded once a second, not 30 times; a keyframe request or a new output sends the
    // next tick at once. A live camera keeps the full rate, whenever its frames come.
    if (!live && !this.changed && !this.sendNext && !this.wantsFrame?.() && t.index - this.lastSentTick < stillRefreshTicks(this.s)) {
      metrics.compositeFramesSkipped.inc({ reason: "still" });
      this.lastFrameAt = undefined;
      return;
    }
    if (this.onCanvas(this.canvas, t.index)) {
      this.changed = false;
      this.sendNext = false;
      this.lastSentTick = t.index;
      metrics.compositeFrames.inc();
      const now = performance.now();
      if (this.lastFrameAt !== undefined) histograms.frameGap.observe((now - this.lastFrameAt) / 1000);
      this.lastFrameAt = now;
    }
  }

  close(): void {
    this.clock.stop();
  }
}
