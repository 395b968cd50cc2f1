// Joining with what the device has, in real Chromium: a camera only (mic permission denied), a
// mic only (camera denied), no devices at all (a viewer), and trying the devices again once
// allowed. Also the page on a phone-sized screen.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBrowserTestServer } from "./testServer.ts";
import {
  openParticipant, pageText, pageTileColors, pageTileRgb, pageToneLevels, pageVisible, waitFor, type BrowserParticipant, type ChromiumDevices,
} from "./pages.ts";

let server: Awaited<ReturnType<typeof startBrowserTestServer>>;
beforeAll(async () => {
  server = await startBrowserTestServer("devices");
}, 60_000);
afterAll(async () => {
  await server?.stop();
});

const join = (id: string, room: string, devices: ChromiumDevices = {}, extra = "") =>
  openParticipant(server.url, id, `room=${room}&name=${id}&processing=off${extra}`, devices);

/** The participant list as `p` shows it: name → the flags after it. */
async function listedFlags(p: BrowserParticipant): Promise<Record<string, string>> {
  return p.evaluate(() =>
    Object.fromEntries([...document.querySelectorAll("#participants li")].map((li) => {
      const [name, ...flags] = (li.textContent ?? "").replace(" (you)", "").split(" · ");
      return [name, flags.filter((f) => !/^\d+p$/.test(f) && f !== "speaking").join(", ")]; // leave out the rung ("720p") and speaking
    })),
  );
}

const isPlaceholder = (rgb: number[] | undefined) => !!rgb && rgb.every((v) => v > 25 && v < 75);

describe("every kind of device in one room", () => {
  let full: BrowserParticipant, cameraOnly: BrowserParticipant, micOnly: BrowserParticipant, viewer: BrowserParticipant;
  beforeAll(async () => {
    full = await join("p0", "kinds");
    cameraOnly = await join("p1", "kinds", { allow: ["camera"] });
    micOnly = await join("p2", "kinds", { allow: ["microphone"] });
    viewer = await join("p3", "kinds", { devices: false });
  }, 60_000);
  afterAll(async () => {
    await Promise.all([full, cameraOnly, micOnly, viewer].map((p) => p?.close()));
  });

  it("tells each page in plain words what it joined with, and shows only the controls it can use", async () => {
    await waitFor("notices", async () => (await pageText(viewer, "#notice-text")).includes("watching and listening only"));
    expect(await pageText(cameraOnly, "#notice-text")).toBe("Access to your microphone was not allowed, so you joined with your camera only.");
    expect(await pageText(micOnly, "#notice-text")).toBe("Access to your camera was not allowed, so you joined with your microphone only.");
    expect(await pageText(viewer, "#notice-text")).toBe("No camera or microphone could be opened, so you are watching and listening only.");
    expect(await pageVisible(full, "#notice")).toBe(false);
    expect(await pageVisible(cameraOnly, "#mute")).toBe(false);
    expect(await pageVisible(cameraOnly, "#camera")).toBe(true);
    expect(await pageVisible(micOnly, "#camera")).toBe(false);
    expect(await pageVisible(micOnly, "#mute")).toBe(true);
    expect(await pageVisible(viewer, "#retry-devices")).toBe(true);
    expect(await pageVisible(full, "#retry-devices")).toBe(false);
    // The join form is gone once in the call.
    for (const p of [full, viewer]) expect(await pageVisible(p, "#join")).toBe(false);
    await waitFor("everyone listed as they take part", async () => {
      const f = await listedFlags(full);
      return f.p0 === "" && f.p1 === "no mic" && f.p2 === "no camera" && f.p3 === "watching" && f;
    });
  });

  it("shows three tiles (camera, camera, named placeholder) to everyone, the viewer included", async () => {
    for (const p of [full, viewer, micOnly]) {
      await waitFor(`${p.id} sees red, green and p2's placeholder`, async () => {
        const c = await pageTileColors(p, 3);
        const rgb = await pageTileRgb(p, 3);
        return c[0] === "red" && c[1] === "green" && isPlaceholder(rgb?.[2]);
      }, 30_000);
    }
  });

  it("mixes only the mics that are sent: the viewer hears p0 and p2, p0 hears p2, nobody hears p1", async () => {
    const ids = ["p0", "p1", "p2"];
    const viewerHears = await waitFor("the viewer hears p0 and p2", async () => {
      const l = await pageToneLevels(viewer, ids);
      return l.p0 > -60 && l.p2 > -60 && l;
    }, 20_000);
    expect(viewerHears.p0 - viewerHears.p1, JSON.stringify(viewerHears)).toBeGreaterThanOrEqual(30);
    const fullHears = await waitFor("p0 hears p2", async () => {
      const l = await pageToneLevels(full, ids);
      return l.p2 > -60 && l;
    }, 20_000);
    expect(fullHears.p2 - fullHears.p1, JSON.stringify(fullHears)).toBeGreaterThanOrEqual(30);
    expect(fullHears.p2 - fullHears.p0, JSON.stringify(fullHears)).toBeGreaterThanOrEqual(30);
  });

  it("joins with the microphone too once it is allowed and 'Try camera and mic again' is pressed", async () => {
    await cameraOnly.page!.context().grantPermissions(["camera", "microphone"], { origin: server.url });
    await cameraOnly.click("#retry-devices");
    await waitFor("p1's notice gone and its mute button back", async () => !(await pageVisible(cameraOnly, "#notice")) && (await pageVisible(cameraOnly, "#mute")));
    await waitFor("p0 hears p1 now", async () => {
      const l = await pageToneLevels(full, ["p0", "p1", "p2"]);
      return l.p1 > -60 && l;
    }, 20_000);
    await waitFor("p1 listed with everything", async () => (await listedFlags(full)).p1 === "");
  });
});

describe("watch mode and a phone screen", () => {
  it("?mode=watch asks for no device, and the call fits a 390-px-wide screen, video first", async () => {
    const sender = await join("p4", "phone");
    const phone = await join("p5", "phone", {}, "&mode=watch");
    try {
      await phone.page!.setViewportSize({ width: 390, height: 844 });
      await waitFor("the phone plays p4's tile", async () => (await pageTileColors(phone, 1))[0] === "magenta", 30_000);
      expect(await phone.evaluate(() => (window as any).mixroom.local.getTracks().length)).toBe(0);
      expect(await pageVisible(phone, "#notice")).toBe(false); // watching was asked for: nothing to explain
      expect((await listedFlags(sender)).p5).toBe("watching");
      const box = await phone.evaluate(() => {
        const r = (sel: string) => document.querySelector(sel)!.getBoundingClientRect();
        return { scroll: document.documentElement.scrollWidth, video: r("#mixed"), bar: r(".bar"), leave: r("#leave"), list: r("#participants") };
      });
      expect(box.scroll).toBeLessThanOrEqual(390); // nothing sticks out sideways
      expect(box.video.width).toBeGreaterThan(370);
      expect(box.video.bottom).toBeLessThanOrEqual(box.bar.top + 1); // video above the controls
      expect(box.bar.bottom).toBeLessThanOrEqual(box.list.top + 1); // participants and chat below
      expect(box.leave.right).toBeLessThanOrEqual(390);
    } finally {
      await Promise.all([sender.close(), phone.close()]);
    }
  });
});
