import { describe, expect, it } from "vitest";
import { annexBNals, avccToAnnexB, FlvReader, FlvWriter, parseAvcC } from "../../mixer/flv.ts";
import { runFfmpeg } from "../support/ffmpegRun.ts";

const avcC = Buffer.from([1, 0x42, 0xe0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x42, 0xe0, 0x1f, 1, 0, 3, 0x68, 0xce, 0x3c]);

function tag(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(11);
  h[0] = type;
  h.writeUIntBE(body.length, 1, 3);
  const prev = Buffer.alloc(4);
  prev.writeUInt32BE(11 + body.length);
  return Buffer.concat([h, body, prev]);
}
const header = Buffer.from([0x46, 0x4c, 0x56, 1, 1, 0, 0, 0, 9, 0, 0, 0, 0]);
const video = (frameType: number, packetType: number, data: Buffer) => tag(9, Buffer.concat([Buffer.from([(frameType << 4) | 7, packetType, 0, 0, 0]), data]));

describe("parseAvcC", () => {
  it("reads the NAL length size, SPS and PPS", () => {
    const c = parseAvcC(avcC);
    expect(c.naluLengthSize).toBe(4);
    expect(c.sps.map((b) => b.toString("hex"))).toEqual(["6742e01f"]);
    expect(c.pps.map((b) => b.toString("hex"))).toEqual(["68ce3c"]);
    expect(() => parseAvcC(Buffer.from([0, 1, 2]))).toThrow();
  });
});

describe("FlvReader", () => {
  it("yields each frame whole as soon as its tag is complete, whatever the chunking, and skips other tags", () => {
    const stream = Buffer.concat([
      header,
      tag(18, Buffer.from("metadata")),
      video(1, 0, avcC),
      video(1, 1, Buffer.from([0, 0, 0, 2, 0x65, 0x88])),
      video(2, 1, Buffer.from([0, 0, 0, 2, 0x41, 0x9a])),
    ]);
    for (const step of [1, 3, 7, stream.length]) {
      const r = new FlvReader();
      const frames = [];
      for (let i = 0; i < stream.length; i += step) frames.push(...r.push(stream.subarray(i, i + step)));
      expect(frames.map((f) => [f.isKeyframe, f.data.toString("hex")])).toEqual([[true, "000000026588"], [false, "00000002419a"]]);
      expect(r.config?.sps[0]?.toString("hex")).toBe("6742e01f");
    }
  });

  it("reads what the bundled ffmpeg's libx264 writes: one keyframe first, then the rest", async () => {
    const r = await runFfmpeg([
      "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=1",
      "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline", "-g", "15", "-pix_fmt", "yuv420p", "-f", "flv", "pipe:1",
    ]);
    expect(r.code).toBe(0);
    const frames = new FlvReader().push(r.stdout);
    expect(frames.length).toBe(30);
    expect(frames.filter((f) => f.isKeyframe).length).toBe(2);
    expect(frames[0]!.isKeyframe).toBe(true);
  });
});

describe("avccToAnnexB", () => {
  it("swaps length prefixes for start codes and puts the parameter sets first", () => {
    const avcc = Buffer.from([0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 3, 0x65, 0x11, 0x22]);
    expect(avccToAnnexB(avcc, 4).toString("hex")).toBe("00000001658800000001651122");
    expect(avccToAnnexB(avcc, 4, [Buffer.from([0x67, 1]), Buffer.from([0x68, 2])]).toString("hex")).toBe("000000016701" + "000000016802" + "00000001658800000001651122");
  });
});

describe("FlvWriter", () => {
  it("writes what FlvReader reads back: the parameter sets, each frame, keyframes marked", async () => {
    const r = await runFfmpeg([
      "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=1",
      "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline", "-g", "15", "-pix_fmt", "yuv420p", "-f", "flv", "pipe:1",
    ]);
    const src = new FlvReader();
    const frames = src.push(r.stdout);
    const c = src.config!;
    const annexB = frames.map((f) => avccToAnnexB(f.data, 4, f.isKeyframe ? [...c.sps, ...c.pps] : []));
    expect(annexBNals(annexB[0]!).map((n) => n[0]! & 0x1f).slice(0, 2)).toEqual([7, 8]);
    const w = new FlvWriter();
    const out = Buffer.concat(annexB.map((a, i) => w.frame(a, frames[i]!.isKeyframe, Math.round((i * 1000) / 30))));
    const back = new FlvReader();
    const got = back.push(out);
    expect(back.config?.sps[0]?.equals(c.sps[0]!)).toBe(true);
    expect(got.map((f) => f.isKeyframe)).toEqual(frames.map((f) => f.isKeyframe));
    got.forEach((f, i) => expect(f.data.equals(frames[i]!.data)).toBe(true));
    // And ffmpeg itself reads it: 30 frames, no error.
    const probe = await runFfmpeg(["-f", "flv", "-i", "pipe:0", "-f", "null", "-"], out);
    expect(probe.code).toBe(0);
  });
});
