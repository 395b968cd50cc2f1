// A werift sender → receiver pair on loopback (sendonly → recvonly, VP8 with NACK and PLI), as the
// server's peers send the composite: for tests and benchmarks of the send path.
import { MediaStreamTrack, RTCPeerConnection, useNACK, usePLI, useSdesMid, useVP8, type RTCRtpSender, type RtpPacket } from "werift";

export interface WeriftPair {
  sender: RTCRtpSender;
  /** Called with every RTP packet the receiver's track gets. */
  onPacket(f: (p: RtpPacket) => void): void;
  close(): Promise<void>;
}

/** Resolves once media can flow; `mid` adds the MID header extension on both sides. */
export async function weriftPair(o: { mid?: boolean } = {}): Promise<WeriftPair> {
  const config = {
    iceServers: [],
    bundlePolicy: "max-bundle" as const,
    codecs: { video: [useVP8({ payloadType: 96, rtcpFeedback: [useNACK(), usePLI()] })] },
    ...(o.mid ? { headerExtensions: { video: [useSdesMid()] } } : {}),
  };
  const tx = new RTCPeerConnection(config), rx = new RTCPeerConnection(config);
  const t = tx.addTransceiver(new MediaStreamTrack({ kind: "video" }), { direction: "sendonly" });
  const listeners: ((p: RtpPacket) => void)[] = [];
  rx.onTrack.subscribe((tr) => tr.onReceiveRtp.subscribe((p) => listeners.forEach((f) => f(p))));
  tx.onIceCandidate.subscribe((c) => c && rx.addIceCandidate(c.toJSON()));
  rx.onIceCandidate.subscribe((c) => c && tx.addIceCandidate(c.toJSON()));
  await tx.setLocalDescription(await tx.createOffer());
  await rx.setRemoteDescription(tx.localDescription!);
  await rx.setLocalDescription(await rx.createAnswer());
  await tx.setRemoteDescription(rx.localDescription!);
  await Promise.all([tx, rx].map((pc) => new Promise<void>((ok) => {
    if (pc.connectionState === "connected") return ok();
    pc.connectionStateChange.subscribe((s) => s === "connected" && ok());
  })));
  return { sender: t.sender, onPacket: (f) => void listeners.push(f), close: async () => void (await Promise.all([tx.close(), rx.close()])) };
}
