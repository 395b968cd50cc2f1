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

/** Cheap sanity checks before werift sees an offer: werift answers almost anything, even nonsense. */
export function checkOffer(sdp: string): string | undefined {
  if (!/^v=0\r?\n/.test(sdp)) return "offer SDP must start with v=0";
  if (!/^m=(audio|video) /m.test(sdp)) return "offer has no audio or video m-line";
  if (!/^a=ice-ufrag:/m.test(sdp)) return "offer has no a=ice-ufrag";
  if (!/^a=fingerprint:/m.test(sdp)) return "offer has no DTLS a=fingerprint";
  return undefined;
}
