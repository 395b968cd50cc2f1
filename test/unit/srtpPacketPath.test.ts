// werift's per-packet path as patched in patches/werift+0.25.2.patch (see patches/README.md):
// each patched helper must give exactly what werift 0.25.2's original gave (ntpTime: what RFC 3550
// says, which the original did not). The originals are
// copied below as references; the SRTP round trips show the patched header parsing still
// protects and unprotects RTP with both profiles werift negotiates.
import { afterEach, describe, expect, it, vi } from "vitest";
import { Event, RtpHeader, RtpPacket, SrtpSession, getBit, int, ntpTime } from "werift";
import { rng } from "../support/ffmpegRun.ts";

// --- werift 0.25.2 originals (lib/index.mjs before the patch) ---
function getBitOriginal(bits: number, startIndex: number, length = 1): number {
  let bin = bits.toString(2).split("");
  bin = [...Array(8 - bin.length).fill("0"), ...bin];
  return Number.parseInt(bin.slice(startIndex, startIndex + length).join(""), 2);
}
const intOriginal = (n: number) => Number.parseInt(n as unknown as string, 10);
function ntpTimeOriginal(nowMs: number): bigint {
  const seconds = (nowMs - Date.UTC(1900, 0, 1)) / 1e3;
  const [sec, msec] = seconds.toString().split(".").map(Number);
  const buf = Buffer.alloc(8);
  buf.writeUIntBE(sec, 0, 4);
  buf.writeUIntBE(msec, 4, 4);
  return buf.readBigUInt64BE();
}

const outcome = (f: () => unknown) => {
  try {
    return f();
  } catch {
    return "throws";
  }
};

afterEach(() => vi.restoreAllMocks());

describe("patched werift helpers match the originals", () => {
  it("the patch is applied (npm ci runs patch-package at postinstall)", () => {
    for (const f of [getBit, ntpTime, new Event().execute, RtpHeader.deSerialize]) expect(String(f)).toContain("mixroom patch");
  });

  it("getBit: every byte, start and length", () => {
    for (let b = 0; b < 256; b++)
      for (let s = 0; s <= 8; s++)
        for (let l = 0; l <= 9; l++) expect(outcome(() => getBit(b, s, l)), `${b},${s},${l}`).toEqual(outcome(() => getBitOriginal(b, s, l)));
  });

  it("int: Math.trunc only where parseInt(String(n)) agrees", () => {
    const r = rng(7);
    const values = [0, 0.5, -0.5, 1, -1, 1.99, 5e-7, -5e-7, 1e20, 1e21, -1e21, 2 ** 53, NaN, Infinity, -Infinity, (Date.now() / 1000) * 90000];
    for (let i = 0; i < 20000; i++) values.push((r() - 0.5) * 10 ** (r() * 25));
    for (const v of values) expect(Object.is(int(v), intOriginal(v)), String(v)).toBe(true);
  });

  it("ntpTime: RFC 3550's timestamp (fraction in units of 2^-32), where the original wrote the fraction's decimal digits", () => {
    const r = rng(11);
    const origin = performance.timeOrigin;
    const now = vi.spyOn(performance, "now");
    let previous = -1n;
    for (let i = 0; i < 20000; i++) {
      // rising readings; a tenth of them whole milliseconds, so some land on whole seconds
      const t = i * 50_000 + (i % 10 === 0 ? Math.round(r() * 1e4) : r() * 1e4);
      now.mockReturnValue(t);
      const ntp = ntpTime();
      const sinceNtpEpochS = (origin + t - Date.UTC(1900, 0, 1)) / 1000;
      expect(Number(ntp >> 32n)).toBe(Math.floor(sinceNtpEpochS) % 2 ** 32);
      expect(Math.abs(Number(ntp & 0xffffffffn) / 2 ** 32 - (sinceNtpEpochS % 1)), String(t)).toBeLessThan(1e-6);
      expect(ntp > previous, "it only moves forward").toBe(true);
      previous = ntp;
    }
    // Half a second past a whole second: 2^31 in the low word, where the original had 5.
    now.mockReturnValue(Date.UTC(2026, 0, 1) + 500 - origin);
    expect(ntpTime() & 0xffffffffn).toBe(2n ** 31n);
    expect(ntpTimeOriginal(Date.UTC(2026, 0, 1) + 500) & 0xffffffffn).toBe(5n);
  });

  it("Event: synchronous subscribers still run in order; queued (async) subscribers still run", async () => {
    const e = new Event<[number]>();
    const seen: string[] = [];
    e.subscribe((n) => seen.push(`a${n}`));
    e.subscribe((n) => seen.push(`b${n}`));
    e.execute(1);
    expect(seen).toEqual(["a1", "b1"]);
    e.queuingSubscribe(async (n) => void seen.push(`q${n}`));
    e.execute(2);
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(["a1", "b1", "a2", "b2", "q2"]);
  });
});

/** A random RTP packet: CSRCs, one-/two-byte header extensions, marker, padding. */
function randomPacket(r: () => number): Buffer {
  const byte = () => Math.floor(r() * 256);
  const cc = r() < 0.2 ? Math.floor(r() * 4) : 0;
  const ext = r() < 0.5;
  const padding = r() < 0.1;
  const head = [0x80 | (padding ? 0x20 : 0) | (ext ? 0x10 : 0) | cc, byte()];
  for (let i = 0; i < 10 + 4 * cc; i++) head.push(byte());
  if (ext) {
    const twoByte = r() < 0.3;
    const body: number[] = [];
    for (let k = 1 + Math.floor(r() * 3); k > 0; k--) {
      const len = 1 + Math.floor(r() * 4);
      if (twoByte) body.push(1 + Math.floor(r() * 200), len);
      else body.push(((1 + Math.floor(r() * 14)) << 4) | (len - 1));
      for (let j = 0; j < len; j++) body.push(byte());
    }
    while (body.length % 4) body.push(0);
    head.push(...(twoByte ? [0x10, 0x00] : [0xbe, 0xde]), 0, body.length / 4, ...body);
  }
  const payload = Array.from({ length: 1 + Math.floor(r() * 1100) }, byte);
  const pad = padding ? [0, 0, 3] : [];
  return Buffer.from([...head, ...payload, ...pad]);
}

describe("RTP header parsing (getBit inside)", () => {
  it("parses the first two bytes as RFC 3550 says, and re-serializes byte-identically", () => {
    const r = rng(3);
    for (let i = 0; i < 2000; i++) {
      const raw = randomPacket(r);
      const h = RtpHeader.deSerialize(raw);
      expect(h.version).toBe(raw[0] >> 6);
      expect(h.padding).toBe(((raw[0] >> 5) & 1) === 1);
      expect(h.extension).toBe(((raw[0] >> 4) & 1) === 1);
      expect(h.csrcLength).toBe(raw[0] & 15);
      expect(h.marker).toBe(raw[1] >> 7 === 1);
      expect(h.payloadType).toBe(raw[1] & 127);
      expect(h.sequenceNumber).toBe(raw.readUInt16BE(2));
      if (!h.padding) expect(RtpPacket.deSerialize(raw).serialize().equals(raw)).toBe(true);
    }
  });
});

describe("RTP header extensions (appended in place by the patch)", () => {
  it("a block of hundreds of elements, one- and two-byte, parses to every element in order", () => {
    for (const twoByte of [false, true]) {
      const body: number[] = [];
      const want: { id: number; payload: number[] }[] = [];
      for (let k = 0; k < 400; k++) {
        const id = twoByte ? 1 + (k % 250) : 1 + (k % 14);
        const payload = [k & 255, (k * 7) & 255];
        want.push({ id, payload });
        body.push(...(twoByte ? [id, 2] : [(id << 4) | 1]), ...payload);
      }
      while (body.length % 4) body.push(0);
      const raw = Buffer.from([0x90, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, ...(twoByte ? [0x10, 0x00] : [0xbe, 0xde]), (body.length / 4) >> 8, (body.length / 4) & 255, ...body, 1, 2, 3]);
      const h = RtpHeader.deSerialize(raw);
      expect(h.extensions.map((e) => ({ id: e.id, payload: [...e.payload] }))).toEqual(want);
      expect(h.payloadOffset).toBe(raw.length - 3);
    }
  });
});

describe("SRTP protect → unprotect through the patched path", () => {
  const keys = (seed: number) => {
    const r = rng(seed);
    const b = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)));
    const k = { key: b(16), salt: b(14) };
    return { localMasterKey: k.key, localMasterSalt: k.salt, remoteMasterKey: k.key, remoteMasterSalt: k.salt };
  };
  for (const [name, profile, saltLen] of [["AES_CM_128_HMAC_SHA1_80", 1, 14], ["AEAD_AES_128_GCM", 7, 12]] as const) {
    it(`${name}: decrypt(encrypt(packet)) is the packet`, () => {
      const k = keys(profile);
      const session = new SrtpSession({
        keys: { ...k, localMasterSalt: k.localMasterSalt.subarray(0, saltLen), remoteMasterSalt: k.remoteMasterSalt.subarray(0, saltLen) },
        profile,
      });
      const r = rng(profile + 100);
      for (let i = 0; i < 300; i++) {
        const raw = randomPacket(r);
        if (raw[0] & 0x20) continue; // werift's encrypt path does not re-add padding
        const p = RtpPacket.deSerialize(raw);
        const enc = session.encrypt(p.payload, p.header);
        expect(enc.equals(raw)).toBe(false);
        expect(session.decrypt(enc).equals(raw)).toBe(true);
      }
    });
  }
});
