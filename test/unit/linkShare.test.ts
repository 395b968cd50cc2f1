// What of a receiver report is the receiver's own link: the server's own send jitter, and what every
// receiver of the output reports at once, are taken out; a receiver whose link alone is bad keeps it.
import { describe, expect, it } from "vitest";
import { OutputLinkShare, REPORT_FRESH_MS, SendJitter } from "../../mixer/linkShare.ts";

const FRAME_TS = 3000; // 90 kHz ticks per frame at 30 fps

describe("the server's own send jitter", () => {
  it("is zero for frames sent exactly on their timestamps, whatever their packet count", () => {
    const j = new SendJitter();
    for (let i = 0; i < 100; i++) j.frameSent(i * (1000 / 30), (i * FRAME_TS) >>> 0, 1 + (i % 5));
    expect(j.ms).toBeLessThan(1e-6);
  });

  it("grows with frames that leave late by turns, as a receiver on a perfect link would report it", () => {
    const j = new SendJitter();
    // Every other frame leaves 40 ms late (an encoder child slow with it): |D| is 40 ms each frame.
    for (let i = 0; i < 200; i++) j.frameSent(i * (1000 / 30) + (i % 2 ? 40 : 0), i * FRAME_TS, 1);
    expect(j.ms).toBeGreaterThan(35);
    expect(j.ms).toBeLessThan(41);
    // Spread over 4 packets a frame, as a receiver counts per packet.
    const k = new SendJitter();
    for (let i = 0; i < 200; i++) k.frameSent(i * (1000 / 30) + (i % 2 ? 40 : 0), i * FRAME_TS, 4);
    expect(k.ms).toBeLessThan(j.ms / 2);
    expect(k.ms).toBeGreaterThan(5);
  });

  it("ignores a timestamp jump (a new stream base)", () => {
    const j = new SendJitter();
    j.frameSent(0, 0, 1);
    j.frameSent(33, 0x80000000, 1);
    expect(j.ms).toBe(0);
  });
});

describe("a receiver's own share of its report", () => {
  it("takes the server's send jitter out of a receiver alone on its output", () => {
    const s = new OutputLinkShare();
    for (let i = 0; i < 200; i++) s.send.frameSent(i * (1000 / 30) + (i % 2 ? 60 : 0), i * FRAME_TS, 1);
    const own = s.judge("a", { loss: 0, jitterMs: s.send.ms }, 0);
    expect(own.jitterMs).toBeLessThan(1);
    expect(own.common.jitterMs).toBeGreaterThan(50);
    // Its own link on top of the server's: what is left is about its link's part.
    const worse = s.judge("a", { loss: 0.2, jitterMs: Math.hypot(s.send.ms, 200) }, 10);
    expect(worse.jitterMs).toBeCloseTo(200, 0);
    expect(worse.loss).toBe(0.2);
  });

  it("blames nobody's link for what every receiver reports at once", () => {
    const s = new OutputLinkShare();
    s.judge("a", { loss: 0.12, jitterMs: 90 }, 0);
    s.judge("b", { loss: 0.15, jitterMs: 80 }, 100);
    const c = s.judge("c", { loss: 0.12, jitterMs: 85 }, 200);
    expect(c.loss).toBe(0);
    expect(c.jitterMs).toBe(0);
    const a = s.judge("a", { loss: 0.12, jitterMs: 90 }, 1000);
    expect(a.loss).toBe(0);
    expect(a.jitterMs).toBe(0);
  });

  it("does not blame one starved browser among others for jitter they all show (seen: 130–230 ms each, 0 lost)", () => {
    const s = new OutputLinkShare();
    s.judge("p1", { loss: 0, jitterMs: 122 }, 0);
    s.judge("ff", { loss: 0, jitterMs: 160 }, 0);
    expect(s.judge("p0", { loss: 0, jitterMs: 229 }, 100).jitterMs).toBe(0);
    expect(s.judge("p1", { loss: 0, jitterMs: 132 }, 200).jitterMs).toBe(0);
    // Two Chromium pages at 112 ms beside a Firefox page that says 23 (seen): neither stands out.
    const t = new OutputLinkShare();
    t.judge("ff", { loss: 0, jitterMs: 23 }, 0);
    t.judge("p1", { loss: 0, jitterMs: 112 }, 0);
    expect(t.judge("p0", { loss: 0, jitterMs: 112 }, 100).jitterMs).toBe(0);
  });

  it("keeps a bad link's loss and jitter its own beside clean receivers", () => {
    const s = new OutputLinkShare();
    s.judge("clean1", { loss: 0, jitterMs: 4 }, 0);
    s.judge("clean2", { loss: 0.01, jitterMs: 6 }, 0);
    const bad = s.judge("bad", { loss: 0.2, jitterMs: 70 }, 500);
    expect(bad.loss).toBeCloseTo(0.2, 5);
    expect(bad.jitterMs).toBeGreaterThan(69);
    // A link that stalls and bursts among clean ones (the rungs test's: ~60 ms against 5–10) keeps its jitter.
    expect(s.judge("bursty", { loss: 0, jitterMs: 60 }, 600).jitterMs).toBeGreaterThan(59);
    // And the clean ones are not pulled down by it: nothing of the bad link's is put on them.
    const clean = s.judge("clean1", { loss: 0, jitterMs: 4 }, 1000);
    expect(clean.common.jitterMs).toBe(60); // the median of the others: 6, 60 and 70
    expect(clean.jitterMs).toBe(0);
    expect(clean.loss).toBe(0);
  });

  it("forgets reports that are stale or of a receiver that left", () => {
    const s = new OutputLinkShare();
    s.judge("b", { loss: 0.2, jitterMs: 90 }, 0);
    expect(s.judge("a", { loss: 0.2, jitterMs: 90 }, 100).loss).toBe(0);
    expect(s.judge("a", { loss: 0.2, jitterMs: 90 }, REPORT_FRESH_MS + 200).loss).toBe(0.2);
    s.judge("b", { loss: 0.2, jitterMs: 90 }, REPORT_FRESH_MS + 300);
    s.forget("b");
    expect(s.judge("a", { loss: 0.2, jitterMs: 90 }, REPORT_FRESH_MS + 400).jitterMs).toBe(90);
  });
});
