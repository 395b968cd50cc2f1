// The cheap checks that run before a decoder or werift sees a hostile client's bytes: picture size
// from the frame's own header, the decode budget's decisions, and the ICE gate's STUN checks.
import { execFileSync, spawn } from "node:child_process";
import dgram from "node:dgram";
import { describe, expect, it } from "vitest";
import { Message, RTCPeerConnection } from "werift";
import { ffmpegPath } from "../../fixtures/generate.ts";
import { DecodeBudgets, DecodeGate, DecodePool, type DecodeLimits } from "../../mixer/decodeBudget.ts";
import { h264FrameSize, vp8KeyframeSize } from "../../mixer/frameSize.ts";
import { guardIce, integrityValid, SHED_WINDOW_MS, SocketGate, STRANGER_BUDGET, stunCredentials } from "../../server/iceGate.ts";
import { RetransmitBudget } from "../../server/retransmitBudget.ts";
import { guardSctp, sctpAssociation } from "../../server/sctpGuard.ts";
import { parseProxies, requestAddress } from "../../server/admission.ts";
import { metrics } from "../../telemetry/metrics.ts";

/** One frame of `size` encoded by the bundled ffmpeg, as a camera would send it. */
function encodeOne(codec: "h264" | "vp8", size: string): Buffer {
  const args = codec === "h264" ? ["-c:v", "libx264", "-profile:v", "high", "-f", "h264"] : ["-c:v", "libvpx", "-f", "ivf"];
  return execFileSync(ffmpegPath(), ["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", `testsrc2=size=${size}:rate=30`, "-frames:v", "1", "-pix_fmt", "yuv420p", ...args, "pipe:1"], { maxBuffer: 64 << 20 });
}

describe("picture size from the frame header", () => {
  for (const size of ["1920x1080", "3840x2160", "640x360", "1280x720", "320x180"]) {
    it(`reads ${size} from an H.264 SPS (cropping included) and a VP8 keyframe`, () => {
      const [w, h] = size.split("x").map(Number);
      expect(h264FrameSize(encodeOne("h264", size))).toEqual({ width: w, height: h });
      const ivf = encodeOne("vp8", size);
      expect(vp8KeyframeSize(ivf.subarray(32 + 12))).toEqual({ width: w, height: h }); // IVF file + frame headers
    });
  }
  it("gives undefined for garbage, never throws", () => {
    for (let i = 0; i < 200; i++) {
      const junk = Buffer.from(Array.from({ length: 40 }, (_, k) => (k < 3 ? [0, 0, 1][k]! : k === 3 ? 0x67 : (i * 31 + k * 17) & 255)));
      expect(() => h264FrameSize(junk)).not.toThrow();
    }
    expect(vp8KeyframeSize(Buffer.from([1, 2, 3]))).toBeUndefined();
  });
});

describe("decode budget", () => {
  const limits: DecodeLimits = { maxFramePixels: 1920 * 1080, pixelsPerSecond: 1920 * 1080 * 30, bitsPerSecond: 4e6, oversizeIntervalMs: 5000, resizeIntervalMs: 1000 };
  const clock = () => {
    let t = 0;
    return { now: () => t, step: (ms: number) => (t += ms) };
  };
  const run = (g: DecodeGate, c: ReturnType<typeof clock>, w: number, h: number, fps: number, seconds: number, bytes = 5000) => {
    let ok = 0;
    const reasons: Record<string, number> = {};
    for (let i = 0; i < fps * seconds; i++) {
      c.step(1000 / fps);
      const key = i % (fps * 2) === 0;
      const r = g.admit(bytes, key, key ? { width: w, height: h } : undefined);
      if (!r) ok++;
      else reasons[r] = (reasons[r] ?? 0) + 1;
    }
    return { ok, reasons };
  };

  it("lets a camera within its budget through whole", () => {
    const c = clock();
    const g = new DecodeGate(limits, [], c.now);
    expect(run(g, c, 1920, 1080, 30, 4).ok).toBe(120);
  });

  it("decodes one oversize keyframe per interval and nothing between", () => {
    const c = clock();
    const g = new DecodeGate(limits, [], c.now);
    const r = run(g, c, 3840, 2160, 30, 10);
    expect(r.ok).toBe(2); // keyframes every 2 s, one taken each 5 s
    expect(r.reasons.oversize! + r.reasons.reference!).toBe(298);
  });

  it("takes one size change per interval from a sender that changes size on every keyframe, and asks for a keyframe once it may", () => {
    const c = clock();
    const g = new DecodeGate(limits, [], c.now);
    const sizes = [{ width: 1280, height: 720 }, { width: 320, height: 180 }];
    let changes = 0;
    let shown = sizes[0]!;
    const reasons: Record<string, number> = {};
    for (let i = 0; i < 300; i++) {
      c.step(1000 / 30);
      const key = i % 3 === 0; // a keyframe every 3 frames, each at the other size
      const size = sizes[(i / 3) & 1]!;
      const r = g.admit(2000, key, key ? size : undefined);
      if (r) reasons[r] = (reasons[r] ?? 0) + 1;
      else if (key && (size.width !== shown.width || i === 0)) (changes += i === 0 ? 0 : 1), (shown = size);
      if (r === "resize") expect(g.roomForKeyframe).toBe(false);
    }
    expect(changes).toBeGreaterThanOrEqual(9); // 10 s: one change a second, no more
    expect(changes).toBeLessThanOrEqual(10);
    expect(reasons.resize).toBeGreaterThan(40); // every keyframe at the other size but those ten (the rest match the size shown)
    c.step(1000);
    expect(g.roomForKeyframe).toBe(true);
    // A camera that keeps its size is never held back by this.
    const steady = new DecodeGate(limits, [], c.now);
    for (let i = 0; i < 300; i++) (c.step(1000 / 30), expect(steady.admit(2000, i % 3 === 0, i % 3 === 0 ? sizes[0] : undefined)).toBeUndefined());
  });

  it("holds a 1080p camera at 120 fps to its pixel rate, and a 20 Mbit/s one to its bit rate", () => {
    const c = clock();
    const fast = run(new DecodeGate(limits, [], c.now), c, 1920, 1080, 120, 10);
    expect(fast.ok).toBeLessThanOrEqual(30 * 10 + 30);
    expect(fast.reasons.pixels).toBeGreaterThan(0);
    const heavy = run(new DecodeGate(limits, [], c.now), c, 640, 360, 30, 10, 20e6 / 8 / 30);
    expect((heavy.ok * 20e6) / 30 / 10).toBeLessThanOrEqual(4e6 * 1.2);
    expect(heavy.reasons.bits).toBeGreaterThan(0);
  });

  it("shares a pool in order of arrival: the newcomer over it waits, the first keeps all its frames", () => {
    const c = clock();
    const pool = new DecodePool("server", 1280 * 720 * 30 * 1.5);
    const first = new DecodeGate(limits, [pool], c.now);
    const second = new DecodeGate(limits, [pool], c.now);
    let firstOk = 0;
    let secondOk = 0;
    for (let i = 0; i < 300; i++) {
      c.step(1000 / 30);
      const key = i % 60 === 0;
      if (!first.admit(5000, key, key ? { width: 1280, height: 720 } : undefined)) firstOk++;
      if (!second.admit(5000, key, key ? { width: 1280, height: 720 } : undefined)) secondOk++;
    }
    expect(firstOk).toBe(300);
    expect(secondOk).toBeLessThan(300 * 0.6);
    first.close();
    // The first gone, the second has the pool.
    let after = 0;
    for (let i = 0; i < 120; i++) {
      c.step(1000 / 30);
      const key = i % 60 === 0;
      if (!second.admit(5000, key, key ? { width: 1280, height: 720 } : undefined)) after++;
    }
    expect(after).toBeGreaterThan(100);
  });

  it("forgets an address's pool when its last camera leaves", () => {
    const b = new DecodeBudgets(limits, limits.pixelsPerSecond * 2, 1e9);
    const g = b.gate("203.0.113.7");
    g.close();
    expect((b as unknown as { addresses: Map<string, unknown> }).addresses.size).toBe(0);
  });
});

/** A STUN binding request as werift signs one (USERNAME, MESSAGE-INTEGRITY, FINGERPRINT). */
function request(user: string, password: string): Buffer {
  const m = new Message(1, 0);
  m.setAttribute("USERNAME", user);
  m.addMessageIntegrity(Buffer.from(password));
  m.addFingerprint();
  return m.bytes;
}

describe("ICE gate STUN checks", () => {
  it("finds USERNAME and checks MESSAGE-INTEGRITY as werift signs it", () => {
    const data = request("abcd:efgh", "s3cret-password-0123456");
    const cred = stunCredentials(data);
    if (cred === "stun_malformed") throw new Error("not parsed");
    expect(cred.username).toBe("abcd:efgh");
    expect(integrityValid(data, cred.integrityAt, "s3cret-password-0123456")).toBe(true);
    expect(integrityValid(data, cred.integrityAt, "another-password-987654")).toBe(false);
  });
  it("calls truncated and lying lengths malformed", () => {
    const data = request("abcd:efgh", "pw");
    expect(stunCredentials(data.subarray(0, 30))).toBe("stun_malformed");
    const lying = Buffer.from(data);
    lying.writeUInt16BE(0xfff0, 22); // the first attribute claims to run past the end
    expect(stunCredentials(lying)).toBe("stun_malformed");
  });
});

describe("retransmission budget", () => {
  it("resends a NACKed packet at most twice, and at most the budget per second", () => {
    let t = 0;
    const b = new RetransmitBudget(100, 2, () => t);
    const everything = Array.from({ length: 500 }, (_, i) => i);
    const first = b.filter(everything);
    expect(first.allowed.length).toBe(100); // a second's burst
    expect(first.rate).toBe(400);
    t += 1000;
    const again = b.filter(everything.slice(0, 100)); // the same packets, a second time and a third
    expect(again.allowed.length).toBe(100);
    t += 1000;
    const third = b.filter(everything.slice(0, 100));
    expect(third.allowed.length).toBe(0);
    expect(third.repeat).toBe(100);
    // A storm of NACKs for the whole history, 50 a second for 10 s, gets 100 resends a second.
    let resent = 0;
    for (let i = 0; i < 500; i++) {
      t += 20;
      resent += b.filter(Array.from({ length: 128 }, (_, k) => (1000 + i * 7 + k) & 0xffff)).allowed.length;
    }
    expect(resent).toBeLessThanOrEqual(100 * 10 + 100);
  });
});

describe("the client address behind a reverse proxy", () => {
  const trusted = parseProxies(["10.0.0.0/8", "::1", "192.0.2.7"]);
  const req = (peer: string, headers: Record<string, string> = {}) => ({ socket: { remoteAddress: peer }, headers });
  it("believes forwarding headers only from a trusted proxy", () => {
    expect(requestAddress(req("203.0.113.9", { "x-forwarded-for": "127.0.0.1" }), trusted)).toBe("203.0.113.9");
    expect(requestAddress(req("::ffff:10.1.1.1", { "x-forwarded-for": "198.51.100.4" }), trusted)).toBe("198.51.100.4");
  });
  it("takes the nearest untrusted hop, so a client cannot prepend its own", () => {
    const h = { "x-forwarded-for": "127.0.0.1, 198.51.100.4, 10.2.2.2" };
    expect(requestAddress(req("10.1.1.1", h), trusted)).toBe("198.51.100.4");
  });
  it("reads RFC 7239 Forwarded (quoted, bracketed IPv6, ports) before X-Forwarded-For", () => {
    const h = { forwarded: 'for=127.0.0.1, for="[2001:db8::5]:4711";proto=https, for=10.3.3.3', "x-forwarded-for": "198.51.100.4" };
    expect(requestAddress(req("::1", h), trusted)).toBe("2001:db8::5");
  });
  it("falls back to the proxy itself without headers", () => {
    expect(requestAddress(req("192.0.2.7"), trusted)).toBe("192.0.2.7");
  });
});

describe("ICE gate decisions", () => {
  const conn = { localUsername: "loc1", localPassword: "local-password-0123456789", remoteCandidates: [{ host: "198.51.100.7", port: 5000 }] };
  const peer = { address: "198.51.100.7", port: 5000, family: "IPv4" as const, size: 0 };
  const stranger = { ...peer, address: "203.0.113.66", port: 6666 };
  const binding = request;
  const rtcp = Buffer.from([0x81, 201, 0, 7, ...new Array(28).fill(1)]);
  const rtp = Buffer.from([0x80, 96, 0, 1, ...new Array(100).fill(2)]);

  it("lets media in only from a peer that proved it knows the ICE password", () => {
    const gate = new SocketGate(conn, { stunPerSecond: 50, stunBurst: 100, participant: "t" });
    expect(gate.admit(rtp, peer)).toBe(false); // not proven yet
    expect(gate.admit(binding("nobody:x", conn.localPassword), stranger)).toBe(false); // unknown username
    expect(gate.admit(binding("loc1:rem1", "a-wrong-password-000000000"), stranger)).toBe(false); // bad integrity
    expect(gate.admit(binding("loc1:rem1", conn.localPassword), peer)).toBe(true);
    expect(gate.admit(rtp, peer)).toBe(true);
    expect(gate.admit(rtp, stranger)).toBe(false);
    expect(gate.admit(Buffer.from([70, 1, 2, 3]), peer)).toBe(false); // not STUN, DTLS or RTP
  });

  it("holds a proven peer's RTCP to its rate, and its media to its bandwidth", () => {
    let bytes = 0;
    const gate = new SocketGate(conn, { stunPerSecond: 50, stunBurst: 100, participant: "t", rtcpPerSecond: 200, ingress: { take: (n) => (bytes += n) <= 50_000 } });
    gate.admit(binding("loc1:rem1", conn.localPassword), peer);
    let reports = 0;
    const t0 = performance.now();
    for (let i = 0; i < 5000; i++) if (gate.admit(rtcp, peer)) reports++;
    expect(reports).toBeGreaterThanOrEqual(200);
    expect(reports).toBeLessThanOrEqual(200 + Math.ceil(((performance.now() - t0) / 1000) * 200) + 1); // a burst, not the flood
    let media = 0;
    for (let i = 0; i < 5000; i++) if (gate.admit(rtp, peer)) media++;
    expect(media).toBeLessThan(5000);
    expect(media * rtp.length).toBeLessThanOrEqual(50_000);
  });

  it("takes RTP only well formed, within its sizes, on a negotiated SSRC and payload type; counts each refusal", () => {
    const routes = (ssrc: number, pt: number) => (ssrc !== 0x1234 ? "ssrc" : pt !== 96 ? "payload_type" : undefined);
    const gate = new SocketGate(conn, { stunPerSecond: 50, stunBurst: 100, participant: "t", maxPacketBytes: 1500, maxExtensionBytes: 256, routes });
    gate.admit(binding("loc1:rem1", conn.localPassword), peer);
    const packet = (o: { pt?: number; ssrc?: number; cc?: number; ext?: number; extClaim?: number; payload?: number }) => {
      const b = Buffer.alloc(12 + 4 * (o.cc ?? 0) + (o.ext !== undefined ? 4 + o.ext : 0) + (o.payload ?? 100));
      b[0] = 0x80 | (o.ext !== undefined ? 0x10 : 0) | (o.cc ?? 0);
      b[1] = o.pt ?? 96;
      b.writeUInt32BE(o.ssrc ?? 0x1234, 8);
      if (o.ext !== undefined) b.writeUInt16BE(0xbede, 12 + 4 * (o.cc ?? 0)), b.writeUInt16BE((o.extClaim ?? o.ext) / 4, 14 + 4 * (o.cc ?? 0));
      return b;
    };
    const dropped = (reason: string) => metrics.udpDropped.get({ reason });
    const cases: [Buffer, string | undefined][] = [
      [packet({}), undefined],
      [packet({ ext: 8, cc: 2 }), undefined],
      [packet({ ext: 256, payload: 1100 }), undefined],
      [packet({ payload: 1500 }), "rtp_oversize"],
      [packet({ ext: 260 }), "rtp_extension_size"],
      [packet({ ext: 8, extClaim: 4000, payload: 0 }), "rtp_malformed"], // the block claims more than the packet has
      [packet({ cc: 15, payload: 0 }).subarray(0, 40), "rtp_malformed"], // CSRCs past the end
      [packet({}).subarray(0, 8), "rtp_malformed"],
      [packet({ ssrc: 0x9999 }), "rtp_unknown_ssrc"],
      [packet({ pt: 97 }), "rtp_payload_type"],
    ];
    for (const [p, reason] of cases) {
      const before = reason ? dropped(reason) : 0;
      expect(gate.admit(p, peer), reason ?? "well formed").toBe(reason === undefined);
      if (reason) expect(dropped(reason)).toBe(before + 1);
    }
    // RTCP is not RTP: its SSRC and type are not media's, and only its size and rate are checked.
    expect(gate.admit(Buffer.from([0x81, 201, 0, 7, ...new Array(28).fill(1)]), peer)).toBe(true);
  });

  it("answers a proven peer's checks at most at STUN_PER_SECOND (amplification)", () => {
    const gate = new SocketGate(conn, { stunPerSecond: 50, stunBurst: 100, participant: "t" });
    const checks = Array.from({ length: 1000 }, () => binding("loc1:rem1", conn.localPassword));
    let answered = 0;
    const t0 = performance.now();
    for (const c of checks) if (gate.admit(c, peer)) answered++;
    expect(answered).toBeGreaterThanOrEqual(100);
    expect(answered).toBeLessThanOrEqual(100 + Math.ceil(((performance.now() - t0) / 1000) * 50) + 1);
  });
});

describe("ICE socket flooded before its pair is selected", () => {
  it("reads strangers' datagrams in bursts of its budget per window, and a real check still gets in once the flood ends", async () => {
    const socket = dgram.createSocket("udp4");
    await new Promise<void>((r) => socket.bind(0, "127.0.0.1", () => r()));
    const port = socket.address().port;
    const conn = { localUsername: "loc9", localPassword: "local-password-9876543210", remoteCandidates: [], protocols: [] as any[], stateChanged: { subscribe: () => undefined } };
    let toWerift = 0;
    conn.protocols.push({ type: "host", transport: { type: "udp", socket, close: async () => socket.close(), onData: () => void toWerift++, send: async () => {} } });
    guardIce([conn], { stunPerSecond: 50, stunBurst: 100, participant: "flooded" });
    const read0 = metrics.udpDropped.get({ reason: "not_webrtc" });
    const shed0 = metrics.udpShed.get();
    // 1 s of junk as fast as one sender goes, from another process, while this one reads.
    const sender = spawn(process.execPath, ["-e", `
      const s = require("node:dgram").createSocket("udp4"); const junk = Buffer.alloc(100, 0x46); let n = 0; const end = Date.now() + 1000;
      (function burst() { for (let i = 0; i < 200; i++) { s.send(junk, ${port}, "127.0.0.1"); n++; } if (Date.now() < end) setImmediate(burst); else setTimeout(() => { console.log(n); s.close(); }, 50); })();`]);
    let out = "";
    sender.stdout.on("data", (d: Buffer) => (out += d.toString()));
    await new Promise((r) => sender.once("exit", r));
    const sent = Number(out.trim());
    await new Promise((r) => setTimeout(r, 2 * SHED_WINDOW_MS));
    const read = metrics.udpDropped.get({ reason: "not_webrtc" }) - read0;
    // Each window: the budget, then at most what one socket buffer held while it did not read.
    const windows = Math.ceil(1000 / SHED_WINDOW_MS) + 3;
    const rcvbuf = socket.getRecvBufferSize();
    expect(sent).toBeGreaterThan(20_000);
    expect(metrics.udpShed.get() - shed0).toBeGreaterThan(0);
    expect(read, `${read} of ${sent} read (rcvbuf ${rcvbuf})`).toBeLessThan(windows * (STRANGER_BUDGET + rcvbuf / 500));
    expect(read).toBeLessThan(sent / 4);
    // Reading again: a peer's signed check, resent as ICE resends it, reaches werift once the
    // junk the kernel kept meanwhile has been read at the budget's pace.
    const peer = dgram.createSocket("udp4");
    await new Promise<void>((r) => peer.bind(0, "127.0.0.1", () => r()));
    const t0 = Date.now();
    while (!toWerift && Date.now() - t0 < 5000) {
      peer.send(request("loc9:rem9", conn.localPassword), port, "127.0.0.1");
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(toWerift).toBeGreaterThan(0);
    peer.close();
    socket.close();
  });
});

describe("SCTP guard (DataChannels)", () => {
  it("finds werift's association once an offer with a DataChannel is applied, with what the guard reads", async () => {
    const offerer = new RTCPeerConnection();
    const answerer = new RTCPeerConnection();
    try {
      offerer.createDataChannel("chat");
      await offerer.setLocalDescription(await offerer.createOffer());
      await answerer.setRemoteDescription(offerer.localDescription!);
      const a = sctpAssociation(answerer) as unknown as Record<string, unknown>;
      expect(a).toBeDefined();
      expect(typeof a.receiveDataChunk).toBe("function");
      expect(typeof a.advertisedRwnd).toBe("number");
      expect(a.sackMisOrdered).toBeInstanceOf(Set);
    } finally {
      await offerer.close();
      await answerer.close();
    }
  });

  it("drops chunks past the advertised window, on high stream numbers, or far behind a gap; passes the rest", () => {
    const taken: number[] = [];
    const assoc = { advertisedRwnd: 1000, sackMisOrdered: new Set<number>(), receiveDataChunk: (c: { streamId: number; userData: Buffer }) => void taken.push(c.streamId) };
    guardSctp(assoc, { maxStreamId: 31, maxOutOfOrder: 3 });
    const chunk = (streamId: number, bytes: number) => ({ streamId, userData: Buffer.alloc(bytes) });
    const dropped = (reason: string) => metrics.dataChannelDropped.get({ reason });
    const before = ["window", "stream", "out_of_order"].map(dropped);
    assoc.receiveDataChunk(chunk(0, 500));
    assoc.receiveDataChunk(chunk(40, 10)); // stream over the bound
    assoc.receiveDataChunk(chunk(1, 1500)); // past the window
    assoc.sackMisOrdered = new Set([5, 6, 7]);
    assoc.receiveDataChunk(chunk(1, 10)); // three already behind a gap
    expect(taken).toEqual([0]);
    expect(["window", "stream", "out_of_order"].map((r, i) => dropped(r) - before[i]!)).toEqual([1, 1, 1]);
  });
});
