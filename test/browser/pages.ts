// Real Chromium participants for the browser tests: one browser process per participant
// (fake capture flags are per process), each with its own colour (y4m) and tone (wav).
import fs from "node:fs";
import { chromium, type Page } from "playwright-core";
import { browserFixturePaths, participant, PALETTE } from "../../fixtures/participants.ts";
import { gridLayout } from "../../mixer/layout.ts";
import { closestColor, type Rgb } from "../support/pixels.ts";

export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const VIEW = { w: 320, h: 180 };

/** One participant's page in a real browser (Chromium through playwright, Firefox through puppeteer). */
export interface BrowserParticipant {
  id: string;
  engine: "chromium" | "firefox";
  evaluate<R, A = undefined>(fn: (arg: A) => R | Promise<R>, arg?: A): Promise<R>;
  click(selector: string): Promise<void>;
  /** Types `text` into an input (replacing what it held). */
  fill(selector: string, text: string): Promise<void>;
  close(): Promise<void>;
  /** The playwright page, for Chromium-only checks (e.g. WebSocket events). */
  page?: Page;
}

/** What a Chromium participant has: its own fake camera + mic (default), nothing, or only some of it allowed. */
export interface ChromiumDevices {
  /** false: no fake capture devices at all (a kiosk or TV without camera or mic). */
  devices?: boolean;
  /** Grant only these permissions (the others are denied, as when a user says no); default: everything. */
  allow?: ("camera" | "microphone")[];
}

export async function openParticipant(baseUrl: string, id: string, query: string, o: ChromiumDevices = {}): Promise<BrowserParticipant> {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: install it (apt-get install -y chromium) or set CHROMIUM_PATH`);
  const media = browserFixturePaths(id);
  const fakeDevices = o.devices === false ? [] : [
    "--use-fake-device-for-media-stream",
    `--use-file-for-fake-video-capture=${media.y4m}`, `--use-file-for-fake-audio-capture=${media.wav}`,
  ];
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking", "--no-first-run",
      "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
      ...(o.allow ? [] : ["--use-fake-ui-for-media-stream"]), ...fakeDevices,
    ],
  });
  const context = await browser.newContext();
  if (o.allow) await context.grantPermissions(o.allow, { origin: baseUrl });
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`[${id}] page error: ${e.message}`));
  await page.goto(`${baseUrl}/?${query}`);
  return {
    id,
    engine: "chromium",
    page,
    evaluate: (fn, arg) => page.evaluate(fn as any, arg) as any,
    click: (sel) => page.click(sel),
    fill: (sel, text) => page.fill(sel, text),
    close: () => browser.close(),
  };
}

/** textContent of the first element matching `selector` ("" when there is none). */
export function pageText(p: BrowserParticipant, selector: string): Promise<string> {
  return p.evaluate((sel) => document.querySelector(sel)?.textContent ?? "", selector);
}

/** Whether the element is rendered (not `hidden`, not display:none, has a box). */
export function pageVisible(p: BrowserParticipant, selector: string): Promise<boolean> {
  return p.evaluate((sel) => {
    const e = document.querySelector(sel) as HTMLElement | null;
    return !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden";
  }, selector);
}

/** Mean colour of the middle of each tile of an n-tile grid, read from the page's #mixed video. */
export async function pageTileColors(p: BrowserParticipant, n: number): Promise<(string | undefined)[]> {
  const means = await pageTileRgb(p, n);
  return means ? means.map((m) => closestColor(m, PALETTE, 90)) : Array(n).fill(undefined);
}

/** Mean RGB of the middle of each tile, or undefined before the video plays. */
export function pageTileRgb(p: BrowserParticipant, n: number): Promise<Rgb[] | undefined> {
  return pageRegionsRgb(p, gridLayout(n, 1280, 720).map((t) => ({ x: t.x + t.w * 0.35, y: t.y + t.h * 0.3, w: t.w * 0.3, h: t.h * 0.4 })));
}

/** Mean RGB of each region (in 1280x720 composite pixels) of what #mixed plays, or undefined before it plays. */
export async function pageRegionsRgb(p: BrowserParticipant, regions: { x: number; y: number; w: number; h: number }[]): Promise<Rgb[] | undefined> {
  const rects = regions.map((t) => ({
    x: Math.round(t.x * (VIEW.w / 1280)),
    y: Math.round(t.y * (VIEW.h / 720)),
    w: Math.max(1, Math.round(t.w * (VIEW.w / 1280))),
    h: Math.max(1, Math.round(t.h * (VIEW.h / 720))),
  }));
  const means = await p.evaluate(({ rects, view }) => {
    const v = document.getElementById("mixed") as HTMLVideoElement;
    if (!v.videoWidth) return undefined;
    const c = document.createElement("canvas");
    c.width = view.w;
    c.height = view.h;
    const g = c.getContext("2d")!;
    g.drawImage(v, 0, 0, view.w, view.h);
    return rects.map((r) => {
      const d = g.getImageData(r.x, r.y, r.w, r.h).data;
      const sum = [0, 0, 0];
      for (let i = 0; i < d.length; i += 4) for (let k = 0; k < 3; k++) sum[k] += d[i + k];
      return sum.map((s) => s / (d.length / 4));
    });
  }, { rects, view: VIEW });
  return means as Rgb[] | undefined;
}

/** The colour of the speaker view's large tile as the page plays it (the middle of the top four fifths). */
export async function pageLargeTileColor(p: BrowserParticipant): Promise<string | undefined> {
  const [rgb] = (await pageRegionsRgb(p, [{ x: 440, y: 160, w: 400, h: 260 }])) ?? [];
  return rgb && closestColor(rgb, PALETTE, 90);
}

/** Chooses `value` in a <select> the way a user does (the page hears "change"). */
export function pageSelect(p: BrowserParticipant, selector: string, value: string): Promise<void> {
  return p.evaluate(({ selector, value }) => {
    const s = document.querySelector(selector) as HTMLSelectElement;
    s.value = value;
    s.dispatchEvent(new Event("change"));
  }, { selector, value });
}

export async function waitForPageTiles(p: BrowserParticipant, ids: string[], timeoutMs = 20_000): Promise<void> {
  const want = ids.map((id) => participant(id).color.name);
  const t0 = Date.now();
  let last: (string | undefined)[] = [];
  while (Date.now() - t0 < timeoutMs) {
    last = await pageTileColors(p, ids.length);
    if (last.every((c, i) => c === want[i])) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${p.id}: tiles ${JSON.stringify(want)} not seen within ${timeoutMs} ms; last ${JSON.stringify(last)}`);
}

/** Level (dB, relative) of each participant's tone in what the page plays from #mixed. */
export async function pageToneLevels(p: BrowserParticipant, ids: string[]): Promise<Record<string, number>> {
  const freqs = ids.map((id) => participant(id).toneHz);
  const levels = await p.evaluate(async (freqs: number[]) => {
    const w = window as any;
    if (!w.__analyser) {
      const v = document.getElementById("mixed") as HTMLVideoElement;
      const ctx = new AudioContext();
      const src = ctx.createMediaStreamSource(v.srcObject as MediaStream);
      const an = ctx.createAnalyser();
      an.fftSize = 16384;
      an.smoothingTimeConstant = 0;
      src.connect(an);
      await ctx.resume();
      w.__analyser = an;
      w.__ctx = ctx;
      await new Promise((r) => setTimeout(r, 600));
    }
    const an = w.__analyser as AnalyserNode;
    const bins = new Float32Array(an.frequencyBinCount);
    an.getFloatFrequencyData(bins);
    const hz = w.__ctx.sampleRate / an.fftSize;
    return freqs.map((f: number) => {
      const b = Math.round(f / hz);
      let best = -Infinity;
      for (let k = b - 3; k <= b + 3; k++) best = Math.max(best, bins[k]);
      return best;
    });
  }, freqs);
  return Object.fromEntries(ids.map((id, i) => [id, levels[i]]));
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const t0 = Date.now();
  let last: unknown;
  while (Date.now() - t0 < timeoutMs) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
}

export async function participantNames(p: BrowserParticipant): Promise<string[]> {
  return p.evaluate(() => [...document.querySelectorAll("#participants li")].map((li) => (li.textContent ?? "").replace(/ \(you\).*| ·.*/g, "")));
}
