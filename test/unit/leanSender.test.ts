// The lean composite send path (server/leanSender.ts): the same bytes werift would put on the wire,
// werift's sender state kept as werift keeps it, over a real werift connection on loopback.
import { afterEach, describe, expect, it } from "vitest";
import { GenericNack, RtcpTransportLayerFeedback, RtpHeader, RtpPacket, SrtpSession, type RTCRtpSender } from "werift";
import { LeanSender, protect } from "../../server/leanSender.ts";
import { rng } from "../support/ffmpegRun.ts";
import { weriftPair } from "../support/weriftPair.ts";

describe("SRTP as werift does it", () => {
  for (const [name, profile, saltLen] of [["AES_CM_128_HMAC_SHA1_80", 1, 14], ["AEAD_AES_128_GCM", 7, 12]] as const) {
    it(`${name}: byte for byte werift's own encryption, across a rollover`, () => {
      const r = rng(profile);
      const b = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)));
      const key = b(16), salt = b(saltLen);
      const keys = { localMasterKey: key, localMasterSalt: salt, remoteMasterKey: key, remoteMasterSalt: salt };
      const werift = new SrtpSession({ keys, profile });
      const ours = new SrtpSession({ keys, profile }); // its own rollover state, as a lean sender's context
      const ctx = (ours as unknown as { localContext: Parameters<typeof protect>[0] extends infer C ? { cipher: C; getSrtpSsrcState(s: number): { rolloverCounter: number }; updateRolloverCount(q: number, s: object): void } : never }).localContext;
      const ssrc = 0x9abcdef0;
      for (let i = 0; i < 400; i++) {
        const seq = (65_400 + i) & 0xffff; // wraps: the rollover counter goes to 1
        const header = new RtpHeader({ payloadType: 96, sequenceNumber: seq, timestamp: (i * 3000) >>> 0, ssrc, marker: i % 7 === 0, extensions: [{ id: 1, payload: Buffer.from("0") }] });
        const payload = b(1 + Math.floor(r() * 1200));
        const expected = werift.encrypt(payload, header);
        const clear = header.serialize(header.serializeSize);
        const state = ctx.getSrtpSsrcState(ssrc);
        ctx.updateRolloverCount(seq, state);
        const got = protect(ctx.cipher, clear, payload, ssrc, state.rolloverCounter, seq)!;
        expect(got.equals(expected), `packet ${i} (seq ${seq}, roc ${state.rolloverCounter})`).toBe(true);
      }
      expect(ctx.getSrtpSsrcState(ssrc).rolloverCounter).toBe(1);
    });
  }
});

interface Link { sender: RTCRtpSender; got: RtpPacket[]; close(): Promise<void> }
const links: Link[] = [];
afterEach(async () => {
  await Promise.all(links.splice(0).map((l) => l.close()));
});

/** A werift sender → receiver pair on loopback with the MID extension, as the server's peers have. */
async function connect(): Promise<Link> {
  const pair = await weriftPair({ mid: true });
  const got: RtpPacket[] = [];
  pair.onPacket((p) => got.push(p.clone()));
  const link = { sender: pair.sender, got, close: pair.close };
  links.push(link);
  return link;
}

const until = async (what: string, ok: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe("a lean sender on a real werift connection", () => {
  it("delivers what werift would (payload, marker, continuous numbering across werift's own sends and a source change), and keeps werift's counters", async () => {
    const l = await connect();
    const lean = new LeanSender(l.sender);
    const s = l.sender as unknown as { packetCount: number; octetCount: number; ssrc: number; rtpTimestamp: number; ntpTimestamp: bigint };
    const payloads: Buffer[] = [];
    let viaWerift = 0;
    for (let i = 0; i < 120; i++) {
      // the mixer's numbering jumps at i = 60 (another output took over): replaceRTP carries it on
      const seq = i < 60 ? 1000 + i : 30_000 + i, ts = i < 60 ? i * 3000 : 7_000_000 + i * 3000;
      if (i === 60) l.sender.replaceRTP({} as RtpHeader, false, 3000);
      const payload = Buffer.from(`packet ${i} `.padEnd(200 + i, "x"));
      payloads.push(payload);
      const p = new RtpPacket(new RtpHeader({ payloadType: 96, sequenceNumber: seq, timestamp: ts, marker: i % 4 === 3 }), payload);
      // every tenth through werift, as a fallback would be; the first after replaceRTP must be (werift resolves continuity)
      if (i % 10 === 5 || !lean.send(p)) {
        viaWerift++;
        await l.sender.sendRtp(p);
      }
    }
    await until("all 120 packets", () => l.got.length >= 120);
    expect(lean.sent).toBe(120 - viaWerift);
    expect(lean.declined, "only the packet right after replaceRTP is declined").toBe(1);
    const got = l.got; // loopback keeps the order they were sent in
    for (let i = 0; i < 120; i++) {
      const p = got[i]!;
      expect(p.payload.equals(payloads[i]!), `payload ${i}`).toBe(true);
      expect(p.header.marker, `marker ${i}`).toBe(i % 4 === 3);
      expect(p.header.ssrc).toBe(s.ssrc);
      if (i) expect(p.header.sequenceNumber, `sequence ${i}`).toBe((got[i - 1]!.header.sequenceNumber + 1) & 0xffff);
      if (i) expect((p.header.timestamp - got[i - 1]!.header.timestamp) >>> 0, `timestamp step ${i}`).toBe(3000);
      expect(p.header.extensions.map((e) => e.payload.toString()), "the MID, on every packet").toEqual(["0"]);
    }
    expect(s.packetCount).toBe(120);
    expect(s.octetCount).toBe(payloads.reduce((n, p) => n + p.length, 0));
    expect(s.rtpTimestamp).toBe(got[119]!.header.timestamp);
    const ntpSeconds = Number(s.ntpTimestamp >> 32n) + Number(s.ntpTimestamp & 0xffffffffn) / 2 ** 32;
    expect(Math.abs(ntpSeconds - (Date.now() - Date.UTC(1900, 0, 1)) / 1000), "the sender report's clock is now").toBeLessThan(2);
  });

  it("a NACK for a packet it sent is answered by werift's retransmission path with the same packet", async () => {
    const l = await connect();
    const lean = new LeanSender(l.sender);
    for (let i = 0; i < 20; i++) expect(lean.send(new RtpPacket(new RtpHeader({ payloadType: 96, sequenceNumber: 500 + i, timestamp: i * 3000 }), Buffer.from(`frame ${i}`)))).toBe(true);
    await until("20 packets", () => l.got.length >= 20);
    const wanted = l.got[13]!.header.sequenceNumber;
    const ssrc = (l.sender as unknown as { ssrc: number }).ssrc;
    (l.sender as unknown as { handleRtcpPacket(p: unknown): void }).handleRtcpPacket(
      new RtcpTransportLayerFeedback({ feedback: new GenericNack({ senderSsrc: 1, mediaSourceSsrc: ssrc, lost: [wanted] }) }),
    );
    await until("the retransmission", () => l.got.length >= 21);
    const again = l.got[20]!;
    expect(again.header.sequenceNumber).toBe(wanted);
    expect(again.payload.toString()).toBe("frame 13");
    expect((l.sender as unknown as { retransmittedPacketsSent: number }).retransmittedPacketsSent).toBe(1);
  });
});
