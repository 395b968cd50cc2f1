// H.264 through RTP and back: frames from the bundled x264, packetized by werift's H264Packetizer
// (single NAL, STAP-A, FU-A), reassembled by the frame assembler with the H.264 payload format.
import { H264Packetizer } from "werift";
import { beforeAll, describe, expect, it } from "vitest";
import { avccToAnnexB, FlvReader } from "../../mixer/flv.ts";
import { H264_FORMAT } from "../../mixer/h264Payload.ts";
import { Vp8FrameAssembler } from "../../mixer/vp8FrameAssembler.ts";
import { runFfmpeg } from "../support/ffmpegRun.ts";

let frames: { data: Buffer; isKeyframe: boolean }[] = [];
beforeAll(async () => {
  const r = await runFfmpeg([
    "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=1",
    "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline", "-g", "10", "-b:v", "800k", "-pix_fmt", "yuv420p", "-f", "flv", "pipe:1",
  ]);
  const flv = new FlvReader();
  const raw = flv.push(r.stdout);
  const c = flv.config!;
  frames = raw.map((f) => ({ data: avccToAnnexB(f.data, c.naluLengthSize, f.isKeyframe ? [...c.sps, ...c.pps] : []), isKeyframe: f.isKeyframe }));
});

function packetsOf(list: typeof frames) {
  const p = new H264Packetizer({ payloadType: 102 });
  let seq = 1000;
  return list.flatMap((f, i) =>
    p.packetize(f.data, i * 3000).map((pkt) => ({ header: { sequenceNumber: seq++ & 0xffff, timestamp: pkt.header.timestamp, marker: pkt.header.marker }, payload: pkt.payload })),
  );
}

describe("H.264 payload format", () => {
  it("gives back every frame byte for byte, keyframes marked, whatever the packet order within the wait", () => {
    expect(frames.length).toBe(30);
    const pkts = packetsOf(frames);
    expect(pkts.length).toBeGreaterThan(frames.length); // FU-A fragments: keyframes do not fit one packet
    // Swap neighbours: reordering within the window must not matter.
    for (let i = 0; i + 1 < pkts.length; i += 7) [pkts[i], pkts[i + 1]] = [pkts[i + 1]!, pkts[i]!];
    const a = new Vp8FrameAssembler(120, 1024, H264_FORMAT);
    const out = pkts.flatMap((p) => a.push(p, 0).frames);
    expect(out.length).toBe(frames.length);
    out.forEach((f, i) => {
      expect(f.isKeyframe).toBe(frames[i]!.isKeyframe);
      expect(f.data.equals(frames[i]!.data)).toBe(true);
    });
  });

  it("after a lost packet drops frames up to the next keyframe and asks for one", () => {
    const pkts = packetsOf(frames);
    const lossAt = pkts.findIndex((p, i) => i > 40 && !H264_FORMAT.describe(p.payload)!.start);
    const a = new Vp8FrameAssembler(50, 1024, H264_FORMAT);
    let asked = false;
    const out = pkts.filter((_, i) => i !== lossAt).flatMap((p, i) => {
      const r = a.push(p, i * 5); // 5 ms apart: the hole is given up after 50 ms
      asked ||= r.keyframeNeeded;
      return r.frames;
    });
    expect(asked).toBe(true);
    expect(out.length).toBeLessThan(frames.length);
    const firstKeyAfterLoss = out.findIndex((f, i) => i > 0 && f.isKeyframe);
    expect(firstKeyAfterLoss).toBeGreaterThan(0); // decoding resumes at a keyframe
  });
});
