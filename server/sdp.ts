// SDP rewriting for servers behind 1:1 NAT (containers, cloud VMs): every host candidate is
// also announced with the public IP on the same port (werift binds one UDP socket per peer).

/** Adds an announced-IP twin for each host candidate line (in an SDP or a single candidate string). */
export function announceIp(sdpOrCandidate: string, ip: string): string {
  return sdpOrCandidate
    .split(/\r\n/)
    .flatMap((line) => {
      const m = /^(a=)?candidate:(\S+) (\d+) (\S+) (\d+) (\S+) (\d+) typ host(.*)$/.exec(line);
      if (!m || m[6] === ip) return [line];
      const [, a = "", foundation, comp, proto, prio, , port, rest] = m;
      // Higher priority than the private address: that is the one remote clients can reach.
      const twin = `${a}candidate:${foundation}a ${comp} ${proto} ${Number(prio) + 1} ${ip} ${port} typ host${rest}`;
      return a ? [twin, line] : [twin];
    })
    .join("\r\n");
}

export interface OfferLimits {
  /** m= sections (a browser offers 2 or 3; werift's parse time grows steeply with their number). */
  mediaSections: number;
  lines: number;
}

const DEFAULT_LIMITS: OfferLimits = { mediaSections: 8, lines: 1000 };

/** Cheap checks before werift sees an offer: werift answers almost anything, even nonsense, and slowly when it is big. */
export function checkOffer(sdp: string, limits: OfferLimits = DEFAULT_LIMITS): string | undefined {
  if (!/^v=0\r?\n/.test(sdp)) return "offer SDP must start with v=0";
  let lines = 1;
  let sections = 0;
  for (let i = sdp.indexOf("\n"); i >= 0; i = sdp.indexOf("\n", i + 1)) {
    lines++;
    if (sdp.startsWith("m=", i + 1)) sections++;
  }
  if (sections > limits.mediaSections) return `offer has ${sections} m= sections; at most ${limits.mediaSections} are accepted`;
  if (lines > limits.lines) return `offer has ${lines} lines; at most ${limits.lines} are accepted`;
  if (!/^m=(audio|video) /m.test(sdp)) return "offer has no audio or video m-line";
  if (!/^a=ice-ufrag:/m.test(sdp)) return "offer has no a=ice-ufrag";
  if (!/^a=fingerprint:/m.test(sdp)) return "offer has no DTLS a=fingerprint";
  return undefined;
}

/** The m-sections of an SDP: the session part first, then one string per `m=` line. */
function sections(sdp: string): { head: string; media: string[]; eol: string } {
  const eol = sdp.includes("\r\n") ? "\r\n" : "\n";
  const [head, ...media] = sdp.split(new RegExp(`${eol}(?=m=)`));
  return { head, media, eol };
}

/**
 * Firefox offers with max-bundle and marks every m-section after the first `a=bundle-only` with
 * port 0: by RFC 8843 that means "bundled with the first", not "rejected". werift 0.25 reads port 0
 * as rejected (it answers `m=video 0 … a=inactive`, no video either way), so such a section gets
 * the discard port 9 that Chromium uses for the same meaning. Sections really rejected (port 0
 * without bundle-only, or not in the BUNDLE group) are left as they are.
 */
export function acceptBundleOnly(sdp: string): string {
  const { head, media, eol } = sections(sdp);
  const group = /^a=group:BUNDLE (.*)$/m.exec(head)?.[1]?.trim().split(/\s+/) ?? [];
  const fixed = media.map((m) => {
    const mid = /^a=mid:(\S+)/m.exec(m)?.[1];
    if (!/^m=\S+ 0 /.test(m) || !/^a=bundle-only\s*$/m.test(m) || !mid || !group.includes(mid)) return m;
    return m.replace(/^(m=\S+) 0 /, "$1 9 ");
  });
  return [head, ...fixed].join(eol);
}

export interface OfferedMedia {
  /** The client sends a microphone (an audio section it sends on). */
  audio: boolean;
  /** The client sends a camera. */
  video: boolean;
  /** It wants the room's audio and video back (any section it receives on). */
  receives: boolean;
}

/**
 * What a client offers to send: a device without a camera offers video `recvonly` (or no video
 * section), a viewer offers everything `recvonly`. Rejected sections (port 0, not bundle-only) count
 * for nothing.
 */
export function offeredMedia(sdp: string): OfferedMedia {
  const { head, media } = sections(sdp);
  const sessionDir = /^a=(sendrecv|sendonly|recvonly|inactive)\s*$/m.exec(head)?.[1] ?? "sendrecv";
  const out: OfferedMedia = { audio: false, video: false, receives: false };
  for (const m of media) {
    const kind = /^m=(\w+) (\d+)/.exec(m);
    if (!kind || (kind[2] === "0" && !/^a=bundle-only\s*$/m.test(m))) continue;
    if (kind[1] !== "audio" && kind[1] !== "video") continue;
    const dir = /^a=(sendrecv|sendonly|recvonly|inactive)\s*$/m.exec(m)?.[1] ?? sessionDir;
    if (dir === "sendrecv" || dir === "sendonly") out[kind[1]] = true;
    if (dir === "sendrecv" || dir === "recvonly") out.receives = true;
  }
  return out;
}

/**
 * werift answers H.264 with the first H.264 payload of the offer, whatever its packetization mode or
 * profile. Our packetizer fragments (FU-A, mode 1) and our encoder makes constrained baseline, so the
 * offer's H.264 payloads are reordered (within the m=video line only): mode 1 constrained
 * baseline (42e0..) first, then mode 1 baseline (4200..), then the rest as they were.
 */
export function preferH264Mode1(sdp: string): string {
  const { head, media, eol } = sections(sdp);
  const fixed = media.map((m) => {
    const line = /^m=video \S+ \S+ (.*)$/m.exec(m);
    if (!line) return m;
    const rank = (pt: string): number => {
      if (!new RegExp(`^a=rtpmap:${pt} H264/`, "mi").test(m)) return -1;
      const fmtp = new RegExp(`^a=fmtp:${pt} (.*)$`, "m").exec(m)?.[1] ?? "";
      if (!/packetization-mode=1/.test(fmtp)) return 3;
      return /profile-level-id=42e0/i.test(fmtp) ? 0 : /profile-level-id=4200/i.test(fmtp) ? 1 : 2;
    };
    const pts = line[1]!.trim().split(/\s+/);
    const h264 = pts.filter((pt) => rank(pt) >= 0);
    if (h264.length < 2) return m;
    const sorted = [...h264].sort((a, b) => rank(a) - rank(b));
    let k = 0;
    const reordered = pts.map((pt) => (rank(pt) >= 0 ? sorted[k++]! : pt));
    return m.replace(line[0], line[0].replace(line[1]!, reordered.join(" ")));
  });
  return [head, ...fixed].join(eol);
}

/** A candidate whose address is an mDNS name (`….local`), as browsers write them to hide local IPs. */
export function isMdnsCandidate(candidate: string): boolean {
  return /^(?:a=)?candidate:\S+ \d+ \S+ \d+ \S+\.local /i.test(candidate);
}
