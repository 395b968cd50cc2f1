// An attacker with a valid seat, run as its own process (its CPU is not the server's): one werift
// participant in the call's room, signaling from its own address, that sends its ordinary camera
// and, on command, abuses what a seat gives it:
//   rtp    — RTP through its own SRTP that no browser sends: datagrams of 4 KB, header-extension
//            blocks of 1 KB and lying extension lengths, a new SSRC on every packet (churn), a
//            payload type never negotiated; ~2,500 packets/s;
//   rtcp   — ~2,000 RTCP packets/s: NACKs for every packet of the composite it was sent (and many
//            it was not), REMB of 0 bit/s, receiver reports of total loss, PLIs;
//   resize — a camera that changes its picture size on every frame (each one a keyframe);
//   chat   — its chat channel flooded (as fast as SCTP takes it, valid and invalid messages), and
//            10 more DataChannels opened; "channels" opens 100 more.
//   node --import tsx test/support/hostileSeat.ts <server url> <room> <local address>
// Prints "ready" once connected; stdin takes a mode, "normal" (its camera only), "steady" (the
// resize attack's frames at one size: its baseline) or "stop"; prints
// {"sent": {mode: packets or messages}, "chatErrors": n} when stopped.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  GenericNack, PictureLossIndication, ReceiverEstimatedMaxBitrate, RtcpPayloadSpecificFeedback, RtcpReceiverInfo, RtcpRrPacket, RtcpTransportLayerFeedback,
  type RtcpPacket,
} from "werift";
import { ffmpegPath } from "../../fixtures/generate.ts";
import { fixturePaths, PARTICIPANTS } from "../../fixtures/participants.ts";
import { IvfReader, ivfFileHeader, ivfFrame } from "../../mixer/ivf.ts";
import { SyntheticParticipant } from "./SyntheticParticipant.ts";

const [url = "", room = "call", localAddress = "127.0.0.3"] = process.argv.slice(2);
type Mode = "normal" | "steady" | "rtp" | "rtcp" | "resize" | "chat";

/**
 * VP8 that alternates 640x360 and 160x90 on every frame, each a keyframe (10 s, looped by the
 * sender), and its baseline: the same 640x360 keyframes alone ("steady").
 */
function resizeStreams(): { resize: string; steady: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mixroom-resize-"));
  const sizes = ["640x360", "160x90"].map((size) => {
    const out = path.join(dir, `${size}.ivf`);
    execFileSync(ffmpegPath(), ["-loglevel", "error", "-f", "lavfi", "-i", `testsrc2=size=${size}:rate=30`, "-t", "5", "-c:v", "libvpx", "-g", "1", "-b:v", "1M", "-deadline", "realtime", "-cpu-used", "8", "-y", out]);
    return new IvfReader().push(fs.readFileSync(out));
  });
  const frames = Array.from({ length: 300 }, (_, i) => sizes[i % 2]![Math.floor(i / 2) % sizes[i % 2]!.length]!);
  const write = (name: string, fs_: { data: Buffer }[]) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, Buffer.concat([ivfFileHeader({ width: 640, height: 360, timebaseDen: 30 }), ...fs_.map((f, i) => ivfFrame(f.data, i))]));
    return file;
  };
  return { resize: write("resize.ivf", frames), steady: write("steady.ivf", sizes[0]!) };
}

// The attacker's own werift may trip over what the server refuses (a channel it opened, then closed): not what is under test.
process.on("unhandledRejection", () => {});
const normalVideo = fixturePaths(PARTICIPANTS[3]!.id, "solid").video;
const { resize: resizeVideo, steady: steadyVideo } = resizeStreams();
const p = new SyntheticParticipant({ url, room, name: PARTICIPANTS[3]!.id, video: normalVideo, audio: fixturePaths(PARTICIPANTS[3]!.id, "solid").audio, localAddress, chat: true });
await p.join();
await p.sendChat("hello");

const video = p.pc.getTransceivers().find((t) => t.kind === "video")!;
const dtls = (video.sender as unknown as { dtlsTransport: { sendRtp(payload: Buffer, header: unknown): Promise<number>; sendRtcp(packets: RtcpPacket[]): Promise<void> } }).dtlsTransport;
const ourSsrc = video.sender.ssrc;
// The composite it receives: its SSRC and the sequence numbers it was sent (what the NACKs name).
let compositeSsrc = 0;
let lastSeq = 0;
video.receiver.track.onReceiveRtp.subscribe((rtp) => ((compositeSsrc = rtp.header.ssrc), (lastSeq = rtp.header.sequenceNumber)));

const sent: Record<string, number> = {};
const count = (m: string, n = 1) => void (sent[m] = (sent[m] ?? 0) + n);
let seq = 1;

/** One crafted RTP packet: the header bytes as given, SRTP-protected by werift as any packet of ours. */
function sendRaw(header: Buffer, payloadBytes: number, ssrc: number): void {
  const h = { ssrc, sequenceNumber: seq, serializeSize: header.length, serialize: () => header };
  seq = (seq + 1) & 0xffff;
  void dtls.sendRtp(Buffer.alloc(payloadBytes, 0x5a), h);
}

function rtpHeader(o: { pt?: number; ssrc?: number; ext?: Buffer; extClaimWords?: number }): Buffer {
  const base = Buffer.alloc(12);
  base[0] = 0x80 | (o.ext ? 0x10 : 0);
  base[1] = o.pt ?? 96;
  base.writeUInt16BE(seq, 2);
  base.writeUInt32BE(Date.now() >>> 0, 4);
  base.writeUInt32BE(o.ssrc ?? ourSsrc, 8);
  if (!o.ext) return base;
  const eh = Buffer.alloc(4);
  eh.writeUInt16BE(0xbede, 0);
  eh.writeUInt16BE(o.extClaimWords ?? o.ext.length / 4, 2);
  return Buffer.concat([base, eh, o.ext]);
}

const oneByteElements = (bytes: number) => Buffer.from(Array.from({ length: bytes }, (_, i) => (i % 2 === 0 ? 0x10 : 0xaa)));

function rtpTick(): void {
  for (let i = 0; i < 5; i++) {
    const ssrc = (Math.random() * 0xffffffff) >>> 0;
    sendRaw(rtpHeader({}), 4000, ourSsrc); // a 4 KB datagram
    sendRaw(rtpHeader({ ext: oneByteElements(1024) }), 100, ourSsrc); // 512 extension elements
    sendRaw(rtpHeader({ ext: oneByteElements(8), extClaimWords: 4000 }), 0, ourSsrc); // an extension block longer than the packet
    sendRaw(rtpHeader({ ssrc }), 900, ssrc); // a new SSRC each time
    sendRaw(rtpHeader({ pt: 77 }), 900, ourSsrc); // a payload type not negotiated
    count("rtp", 5);
  }
}

function rtcpTick(): void {
  if (!compositeSsrc) return;
  const everything = Array.from({ length: 200 }, (_, i) => (lastSeq - i) & 0xffff);
  for (let i = 0; i < 5; i++) {
    void dtls.sendRtcp([
      new RtcpTransportLayerFeedback({ feedback: new GenericNack({ senderSsrc: ourSsrc, mediaSourceSsrc: compositeSsrc, lost: everything }) }),
      new RtcpPayloadSpecificFeedback({ feedback: new ReceiverEstimatedMaxBitrate({ senderSsrc: ourSsrc, mediaSsrc: 0, bitrate: 0n, ssrcFeedbacks: [compositeSsrc] }) }),
    ]);
    void dtls.sendRtcp([new RtcpRrPacket({ ssrc: ourSsrc, reports: [new RtcpReceiverInfo({ ssrc: compositeSsrc, fractionLost: 255, packetsLost: 100_000, highestSequence: lastSeq, jitter: 90_000, lsr: 0, dlsr: 0 })] })]);
    void dtls.sendRtcp([new RtcpPayloadSpecificFeedback({ feedback: new PictureLossIndication({ senderSsrc: ourSsrc, mediaSsrc: compositeSsrc }) })]);
    void dtls.sendRtcp([new RtcpTransportLayerFeedback({ feedback: new GenericNack({ senderSsrc: ourSsrc, mediaSourceSsrc: compositeSsrc, lost: [lastSeq] }) })]);
    count("rtcp", 4);
  }
}

function chatTick(): void {
  const dc = p.chatChannel!;
  if (dc.readyState !== "open") return; // the server stopped its DataChannels
  // As fast as SCTP takes them: keep ~256 KB queued, half valid chat, half garbage.
  for (let i = 0; i < 200 && dc.bufferedAmount < 256 * 1024; i++) {
    dc.send(i % 2 ? JSON.stringify({ text: `flood ${i} ${"x".repeat(400)}` }) : `{not json ${"y".repeat(1000)}`);
    count("chat");
  }
}

/** More DataChannels than the one chat channel (the server closes them, and stops them all past its bound). */
function openChannels(n: number): void {
  for (let i = 0; i < n; i++) p.pc.createDataChannel(`extra-${sent.channels ?? 0}`), count("channels");
}

let mode: Mode = "normal";
let channelsOpened = false;
const ticks: Record<Mode, (() => void) | undefined> = { normal: undefined, steady: undefined, rtp: rtpTick, rtcp: rtcpTick, resize: undefined, chat: chatTick };
const videos: Partial<Record<Mode, string>> = { resize: resizeVideo, steady: steadyVideo };
const timer = setInterval(() => ticks[mode]?.(), 10);
function setMode(m: Mode): void {
  if (m === mode) return;
  if ((videos[m] ?? normalVideo) !== (videos[mode] ?? normalVideo)) p.switchVideo(videos[m] ?? normalVideo);
  if (m === "chat" && !channelsOpened) {
    channelsOpened = true;
    openChannels(10);
  }
  mode = m;
}

process.stdout.write("ready\n");
process.stdin.setEncoding("utf8");
await new Promise<void>((resolve) => {
  process.stdin.on("data", (d: string) => {
    for (const line of d.split("\n").map((l) => l.trim())) {
      if (line === "stop") resolve();
      else if (line === "channels") openChannels(100);
      else if (line in ticks) setMode(line as Mode);
    }
  });
});
clearInterval(timer);
process.stdin.destroy();
const summary = { sent, chatErrors: p.chatReceived.filter((c) => c.msg.type === "error").length, errors: p.errors };
await p.close().catch(() => {});
process.stdout.write(JSON.stringify(summary) + "\n");
process.exit(0);
