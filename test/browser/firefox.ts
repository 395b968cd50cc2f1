// Real Firefox participants (puppeteer over WebDriver BiDi), behind the same interface as the Chromium pages.
// Firefox's fake devices are prefs, not files: a colour-cycling camera and a sine mic (1 kHz unless toneHz).
import fs from "node:fs";
import puppeteer from "puppeteer-core";
import type { BrowserParticipant } from "./pages.ts";

export const FIREFOX = process.env.FIREFOX_PATH || "/usr/bin/firefox-esr";

export interface FirefoxOptions {
  /** false: no capture devices at all, so getUserMedia fails as on a machine without camera or mic. */
  devices?: boolean;
  /** Frequency of the fake mic's sine (Firefox's default is 1000 Hz). */
  toneHz?: number;
  /** false: expose real host IPs instead of `.local` mDNS names in ICE candidates (default: obfuscated, as users have). */
  obfuscateHost?: boolean;
}

export async function openFirefoxParticipant(baseUrl: string, id: string, query: string, o: FirefoxOptions = {}): Promise<BrowserParticipant> {
  if (!fs.existsSync(FIREFOX)) throw new Error(`Firefox not found at ${FIREFOX}: install it (apt-get install -y firefox-esr) or set FIREFOX_PATH`);
  const prefs: Record<string, unknown> = {
    "media.autoplay.default": 0, // allow audible autoplay without a gesture
    "media.autoplay.blocking_policy": 0,
    "media.peerconnection.ice.obfuscate_host_addresses": o.obfuscateHost !== false,
  };
  if (o.devices !== false) {
    Object.assign(prefs, {
      "media.navigator.streams.fake": true,
      "media.navigator.permission.disabled": true,
      "media.navigator.audio.fake_frequency": o.toneHz ?? 1000,
    });
  } else {
    // No fake devices, and no audio backend, so a host's real mic isn't found either: the client's
    // audio+video getUserMedia then fails with NotFoundError (no pref hides a real webcam, but without a mic
    // the combined request fails anyway). No prompt: headless would wait on it forever.
    Object.assign(prefs, { "media.navigator.permission.disabled": true, "media.cubeb.force_null_context": true });
  }
  // puppeteer creates a fresh temp profile for the prefs and deletes it again in browser.close().
  const browser = await puppeteer.launch({ browser: "firefox", executablePath: FIREFOX, headless: true, extraPrefsFirefox: prefs });
  try {
    const page = await browser.newPage();
    page.on("pageerror", (e) => console.error(`[${id}] page error: ${(e as Error).message ?? e}`));
    page.on("console", (m) => {
      if (m.type() === "error") console.error(`[${id}] console error: ${m.text()}`);
    });
    // tsx (keepNames) wraps named inner functions in __name(), which the page doesn't have when evaluate ships fn.toString().
    await page.evaluateOnNewDocument("globalThis.__name = (f) => f");
    await page.goto(`${baseUrl}/?${query}`);
    return {
      id,
      engine: "firefox",
      evaluate: (fn, arg) => page.evaluate(fn as any, arg) as any,
      click: (sel) => page.click(sel),
      fill: (sel, text) => page.locator(sel).fill(text),
      close: () => browser.close(),
    };
  } catch (e) {
    await browser.close();
    throw e;
  }
}
