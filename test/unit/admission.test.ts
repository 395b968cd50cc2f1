import { describe, expect, it } from "vitest";
import { clientAddress, Concurrency, isLoopback, KeyedQuota } from "../../server/admission.ts";
import { anonymousApiAllowed } from "../../server/http.ts";
import { checkOffer } from "../../server/sdp.ts";
import { cleanName } from "../../server/protocol.ts";

describe("KeyedQuota", () => {
  it("grants up to the cap per key, and a release (once) frees one slot", () => {
    const q = new KeyedQuota(() => 2);
    const a1 = q.take("a");
    const a2 = q.take("a");
    expect(a1 && a2).toBeTruthy();
    expect(q.take("a")).toBeUndefined();
    expect(q.take("b")).toBeTruthy(); // another address is not starved
    a1!();
    a1!(); // a second release of the same grant frees nothing more
    expect(q.count("a")).toBe(1);
    expect(q.take("a")).toBeTruthy();
    expect(q.take("a")).toBeUndefined();
  });
});

describe("Concurrency", () => {
  it("runs at most `limit` at once, queues up to `queueLimit`, refuses the rest at once", async () => {
    const gate = new Concurrency(() => 2, () => 1);
    let running = 0;
    let peak = 0;
    const release: (() => void)[] = [];
    const task = () =>
      new Promise<number>((resolve) => {
        running++;
        peak = Math.max(peak, running);
        release.push(() => {
          running--;
          resolve(1);
        });
      });
    const runs = [gate.run(task), gate.run(task), gate.run(task)];
    expect(await gate.run(task)).toBeUndefined(); // the fourth: two running, one queued
    await new Promise((r) => setTimeout(r, 10));
    expect(running).toBe(2);
    while (release.length) {
      release.shift()!();
      await new Promise((r) => setTimeout(r, 10));
    }
    expect((await Promise.all(runs)).map((r) => r?.value)).toEqual([1, 1, 1]);
    expect(peak).toBe(2);
  });

  it("frees its slot when a task throws", async () => {
    const gate = new Concurrency(() => 1, () => 0);
    await expect(gate.run(async () => { throw new Error("boom"); })).rejects.toThrow("boom");
    expect(await gate.run(async () => 7)).toEqual({ value: 7 });
  });
});

describe("addresses", () => {
  it("folds IPv4-mapped IPv6 and knows loopback", () => {
    expect(clientAddress("::ffff:127.0.0.1")).toBe("127.0.0.1");
    expect(clientAddress(undefined)).toBe("unknown");
    expect(isLoopback("127.0.0.2")).toBe(true);
    expect(isLoopback("::1")).toBe(true);
    expect(isLoopback("10.0.0.1")).toBe(false);
  });
});

describe("cleanName", () => {
  it("removes control, bidi and zero-width characters and collapses spaces", () => {
    expect(cleanName("  Ada\u202E nimda\u202C ")).toBe("Ada nimda");
    expect(cleanName("A\u200Bd\u200Da\uFEFF")).toBe("Ada");
    expect(cleanName("Bob\u0000\u0007\n\tSmith")).toBe("Bob Smith");
    expect(cleanName("\u2066\u2069")).toBe("");
    expect(cleanName("Zoë 李")).toBe("Zoë 李");
  });
});

describe("checkOffer limits", () => {
  const head = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-ufrag:x\r\na=fingerprint:sha-256 AA\r\n";
  it("refuses too many m= sections or lines before werift parses anything", () => {
    const many = head + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n".repeat(1000);
    expect(checkOffer(many)).toMatch(/1000 m= sections; at most 8/);
    const long = head + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" + "a=x\r\n".repeat(2000);
    expect(checkOffer(long)).toMatch(/lines; at most 1000/);
    expect(checkOffer(head + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n")).toBeUndefined();
  });
});

describe("anonymousApiAllowed (no API_TOKEN)", () => {
  it("answers loopback only, unless PUBLIC_API=on", () => {
    expect(anonymousApiAllowed("127.0.0.1", false)).toBe(true);
    expect(anonymousApiAllowed("::1", false)).toBe(true);
    expect(anonymousApiAllowed("203.0.113.9", false)).toBe(false);
    expect(anonymousApiAllowed("192.168.1.20", false)).toBe(false);
    expect(anonymousApiAllowed("203.0.113.9", true)).toBe(true);
  });
});
