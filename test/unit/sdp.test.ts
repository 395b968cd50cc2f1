import { describe, expect, it } from "vitest";
import { acceptBundleOnly, announceIp, checkOffer, isMdnsCandidate, offeredMedia, preferH264Mode1 } from "../../server/sdp.ts";

const PUBLIC = "203.0.113.7";

const HOST_UDP = "a=candidate:1 1 udp 2130706431 172.17.0.2 40001 typ host";
const HOST_UDP_2 = "a=candidate:2 1 udp 2130706175 10.0.0.5 40002 typ host generation 0 network-id 1";
const HOST_TCP = "a=candidate:3 1 tcp 1518280447 172.17.0.2 9 typ host tcptype active";
const SRFLX = "a=candidate:4 1 udp 1694498815 198.51.100.1 40001 typ srflx raddr 172.17.0.2 rport 40001";
const RELAY = "a=candidate:5 1 udp 16777215 198.51.100.9 3478 typ relay raddr 0.0.0.0 rport 0";

function sdp(...candidates: string[]): string {
  return [
    "v=0",
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0 1",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "c=IN IP4 172.17.0.2",
    "a=ice-ufrag:abcd",
    "a=ice-pwd:0123456789abcdef01234567",
    "a=fingerprint:sha-256 AA:BB",
    "a=mid:0",
    ...candidates,
    "a=end-of-candidates",
    "a=rtpmap:111 opus/48000/2",
    "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "c=IN IP4 172.17.0.2",
    "a=mid:1",
    "a=rtpmap:96 VP8/90000",
    "",
  ].join("\r\n");
}

/** Parses a candidate line into its fields. */
function cand(line: string) {
  const m = /^(?:a=)?candidate:(\S+) (\d+) (\S+) (\d+) (\S+) (\d+) typ (\S+)(.*)$/.exec(line);
  if (!m) throw new Error(`not a candidate: ${line}`);
  const [, foundation, component, protocol, priority, ip, port, type, rest] = m;
  return { foundation, component, protocol, priority: Number(priority), ip, port, type, rest };
}

const lines = (s: string) => s.split("\r\n");

describe("announceIp", () => {
  it("adds a public-IP twin before each host candidate, same port, higher priority", () => {
    const out = lines(announceIp(sdp(HOST_UDP), PUBLIC));
    const i = out.indexOf(HOST_UDP);
    expect(i).toBeGreaterThan(0);
    const twin = cand(out[i - 1]);
    const orig = cand(HOST_UDP);
    expect(out[i - 1].startsWith("a=candidate:")).toBe(true);
    expect(twin).toMatchObject({ ip: PUBLIC, port: orig.port, type: "host", component: orig.component, protocol: orig.protocol });
    expect(twin.priority).toBeGreaterThan(orig.priority);
    expect(twin.foundation).not.toBe(orig.foundation);
  });

  it("leaves every other line untouched and in order", () => {
    const input = sdp(HOST_UDP, SRFLX, RELAY);
    const out = lines(announceIp(input, PUBLIC));
    const twins = out.filter((l) => l.includes(PUBLIC));
    expect(twins).toHaveLength(1);
    expect(out.filter((l) => !l.includes(PUBLIC))).toEqual(lines(input));
  });

  it("twins every host candidate, keeping trailing attributes", () => {
    const input = sdp(HOST_UDP, HOST_UDP_2, HOST_TCP, SRFLX, RELAY);
    const out = lines(announceIp(input, PUBLIC));
    expect(out).toHaveLength(lines(input).length + 3);
    for (const host of [HOST_UDP, HOST_UDP_2, HOST_TCP]) {
      const i = out.indexOf(host);
      const twin = cand(out[i - 1]);
      const orig = cand(host);
      expect(twin.ip).toBe(PUBLIC);
      expect(twin.port).toBe(orig.port);
      expect(twin.protocol).toBe(orig.protocol);
      expect(twin.rest).toBe(orig.rest);
      expect(twin.priority).toBeGreaterThan(orig.priority);
    }
  });

  it("does not twin srflx or relay candidates", () => {
    const input = sdp(SRFLX, RELAY);
    expect(announceIp(input, PUBLIC)).toBe(input);
  });

  it("does not twin a host candidate that already has the public IP", () => {
    const input = sdp(`a=candidate:9 1 udp 2130706431 ${PUBLIC} 40001 typ host`);
    expect(announceIp(input, PUBLIC)).toBe(input);
  });

  it("is a no-op on an SDP without candidates", () => {
    const input = sdp();
    expect(announceIp(input, PUBLIC)).toBe(input);
  });

  it("keeps the CRLF line endings, including the final one", () => {
    const out = announceIp(sdp(HOST_UDP), PUBLIC);
    expect(out.endsWith("\r\n")).toBe(true);
    expect(out.replace(/\r\n/g, "")).not.toMatch(/[\r\n]/);
  });

  it("rewrites a bare trickled host candidate to the public IP", () => {
    const bare = "candidate:1 1 udp 2130706431 172.17.0.2 40001 typ host generation 0 ufrag abcd";
    const out = announceIp(bare, PUBLIC);
    expect(out).not.toContain("\r\n");
    const twin = cand(out);
    expect(out.startsWith("candidate:")).toBe(true);
    expect(twin).toMatchObject({ ip: PUBLIC, port: "40001", type: "host", rest: " generation 0 ufrag abcd" });
    expect(twin.priority).toBeGreaterThan(2130706431);
  });

  it("leaves bare non-host candidates and empty strings alone", () => {
    const srflx = SRFLX.slice(2);
    expect(announceIp(srflx, PUBLIC)).toBe(srflx);
    expect(announceIp("", PUBLIC)).toBe("");
  });
});

describe("checkOffer", () => {
  it("accepts a plausible offer", () => {
    expect(checkOffer(sdp(HOST_UDP))).toBeUndefined();
  });

  it.each([
    ["not starting with v=0", "o=- 1 1 IN IP4 0.0.0.0\r\n", /v=0/],
    ["without m-lines", "v=0\r\na=ice-ufrag:x\r\na=fingerprint:sha-256 AA\r\n", /m-line/],
    ["without ice-ufrag", "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=fingerprint:sha-256 AA\r\n", /ice-ufrag/],
    ["without fingerprint", "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:x\r\n", /fingerprint/],
  ])("rejects an offer %s", (_what, offer, reason) => {
    expect(checkOffer(offer)).toMatch(reason);
  });
});

/** A Firefox max-bundle offer as Firefox ESR writes it: later sections bundle-only with port 0. */
function firefoxOffer(audioDir = "sendrecv", videoDir = "sendrecv"): string {
  return [
    "v=0",
    "o=mozilla...THIS_IS_SDPARTA-99.0 1 0 IN IP4 0.0.0.0",
    "s=-",
    "t=0 0",
    "a=fingerprint:sha-256 AA:BB",
    "a=group:BUNDLE 0 1 2",
    "a=ice-options:trickle",
    "a=msid-semantic:WMS *",
    "m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101",
    "c=IN IP4 0.0.0.0",
    `a=${audioDir}`,
    "a=ice-pwd:0123456789abcdef01234567",
    "a=ice-ufrag:abcd",
    "a=mid:0",
    "a=rtpmap:109 opus/48000/2",
    "m=video 0 UDP/TLS/RTP/SAVPF 120 124 121 125 126 127 97 98",
    "c=IN IP4 0.0.0.0",
    "a=bundle-only",
    `a=${videoDir}`,
    "a=mid:1",
    "a=rtpmap:120 VP8/90000",
    "m=application 0 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN IP4 0.0.0.0",
    "a=bundle-only",
    "a=mid:2",
    "a=sctp-port:5000",
    "",
  ].join("\r\n");
}

describe("acceptBundleOnly (Firefox max-bundle offers)", () => {
  it("gives bundle-only sections in the BUNDLE group the discard port 9", () => {
    const out = acceptBundleOnly(firefoxOffer());
    expect(out).toMatch(/^m=audio 9 /m);
    expect(out).toMatch(/^m=video 9 UDP\/TLS\/RTP\/SAVPF 120 /m);
    expect(out).toMatch(/^m=application 9 UDP\/DTLS\/SCTP webrtc-datachannel$/m);
    // Nothing else changes: same lines, same order, CRLF kept.
    expect(out.split("\r\n").length).toBe(firefoxOffer().split("\r\n").length);
    expect(out.replace(/^(m=\S+) 9 /gm, "$1 X ")).toBe(firefoxOffer().replace(/^(m=\S+) [09] /gm, "$1 X "));
  });

  it("leaves a really rejected section (port 0 without bundle-only, or outside the group) rejected", () => {
    const rejected = firefoxOffer().replace("a=bundle-only\r\na=sendrecv\r\na=mid:1", "a=sendrecv\r\na=mid:1");
    expect(acceptBundleOnly(rejected)).toMatch(/^m=video 0 /m);
    const outside = firefoxOffer().replace("a=group:BUNDLE 0 1 2", "a=group:BUNDLE 0 2");
    expect(acceptBundleOnly(outside)).toMatch(/^m=video 0 /m);
    expect(acceptBundleOnly(outside)).toMatch(/^m=application 9 /m);
  });

  it("changes nothing in a Chromium offer, with LF or CRLF line ends", () => {
    const chrome = sdp(HOST_UDP);
    expect(acceptBundleOnly(chrome)).toBe(chrome);
    const lf = firefoxOffer().replace(/\r\n/g, "\n");
    expect(acceptBundleOnly(lf)).toMatch(/^m=video 9 /m);
    expect(acceptBundleOnly(lf)).not.toContain("\r");
  });
});

describe("offeredMedia (what a client sends and receives)", () => {
  it("reads camera + mic from a Chromium or Firefox offer", () => {
    expect(offeredMedia(sdp(HOST_UDP))).toEqual({ audio: true, video: true, receives: true });
    expect(offeredMedia(firefoxOffer())).toEqual({ audio: true, video: true, receives: true });
  });

  it("mic only, camera only, and a viewer (everything recvonly)", () => {
    expect(offeredMedia(firefoxOffer("sendrecv", "recvonly"))).toEqual({ audio: true, video: false, receives: true });
    expect(offeredMedia(firefoxOffer("recvonly", "sendrecv"))).toEqual({ audio: false, video: true, receives: true });
    expect(offeredMedia(firefoxOffer("recvonly", "recvonly"))).toEqual({ audio: false, video: false, receives: true });
    expect(offeredMedia(firefoxOffer("sendonly", "inactive"))).toEqual({ audio: true, video: false, receives: false });
  });

  it("ignores rejected sections and takes the session-level direction as the default", () => {
    const rejected = firefoxOffer().replace("a=bundle-only\r\na=sendrecv\r\na=mid:1", "a=sendrecv\r\na=mid:1");
    expect(offeredMedia(rejected).video).toBe(false);
    const noDir = sdp(HOST_UDP).replace("t=0 0", "t=0 0\r\na=recvonly");
    expect(offeredMedia(noDir)).toEqual({ audio: false, video: false, receives: true });
  });
});

describe("preferH264Mode1", () => {
  const video = (order: string) =>
    [
      "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0",
      `m=video 9 UDP/TLS/RTP/SAVPF ${order}`,
      "a=rtpmap:96 VP8/90000",
      "a=rtpmap:104 H264/90000", "a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f",
      "a=rtpmap:102 H264/90000", "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
      "a=rtpmap:108 H264/90000", "a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
      "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96", "",
    ].join("\r\n");
  it("puts mode 1 constrained baseline first among the H.264 payloads, leaving the others in place", () => {
    expect(preferH264Mode1(video("96 104 102 108 97"))).toMatch(/^m=video 9 UDP\/TLS\/RTP\/SAVPF 96 108 102 104 97\r$/m);
    expect(preferH264Mode1(video("108 102 96"))).toBe(video("108 102 96"));
    expect(preferH264Mode1(sdp(HOST_UDP))).toBe(sdp(HOST_UDP)); // no H.264 at all
  });
});

describe("isMdnsCandidate", () => {
  it("knows a browser's .local host names from addresses", () => {
    expect(isMdnsCandidate("candidate:1 1 udp 2122262783 3f1d2c5e-9b7a-4c1e-8d2f-6a5b4c3d2e1f.local 54321 typ host")).toBe(true);
    expect(isMdnsCandidate("a=candidate:1 1 UDP 2122262783 abc.LOCAL 9 typ host")).toBe(true);
    expect(isMdnsCandidate(HOST_UDP)).toBe(false);
    expect(isMdnsCandidate("candidate:1 1 udp 1 printer.local.example.com 9 typ host")).toBe(false);
  });
});
