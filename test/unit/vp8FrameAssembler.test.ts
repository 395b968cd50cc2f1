import { describe, expect, it } from "vitest";
import { Vp8FrameAssembler, type AssemblerOutput, type RtpLike, type Vp8Frame } from "../../mixer/vp8FrameAssembler.ts";

// VP8 payload descriptor (RFC 7741), 1 byte, X=0: S=1/PID=0 starts a frame, 0x00 continues it.
const START = 0x10;
const CONT = 0x00;

/** VP8 data of a frame: a keyframe's first byte has bit 0 = 0 (P=0), an inter frame's bit 0 = 1. */
function vp8Data(key: boolean, id: number, len = 30): Buffer {
  const data = Buffer.alloc(len);
  if (key) Buffer.from([0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]).copy(data);
  else Buffer.from([0x31, 0x01, 0x00]).copy(data);
  for (let i = 10; i < len; i++) data[i] = (id * 31 + i) & 0xff;
  return data;
}

interface TestFrame {
  data: Buffer;
  timestamp: number;
  key: boolean;
  packets: RtpLike[];
}

/** Splits one frame into `parts` RTP packets starting at `seq` (16-bit, wraps). */
function frame(opts: { seq: number; ts: number; key: boolean; parts?: number; id?: number }): TestFrame {
  const parts = opts.parts ?? 1;
  const data = vp8Data(opts.key, opts.id ?? opts.ts, 10 * parts + 20);
  const size = Math.ceil(data.length / parts);
  const packets: RtpLike[] = [];
  for (let i = 0; i < parts; i++) {
    const chunk = data.subarray(i * size, Math.min(data.length, (i + 1) * size));
    packets.push({
      header: { sequenceNumber: (opts.seq + i) & 0xffff, timestamp: opts.ts, marker: i === parts - 1 },
      payload: Buffer.concat([Buffer.from([i === 0 ? START : CONT]), chunk]),
    });
  }
  return { data, timestamp: opts.ts, key: opts.key, packets };
}

/** Pushes packets at `now` and merges the outputs. */
function pushAll(a: Vp8FrameAssembler, packets: RtpLike[], now = 0): AssemblerOutput {
  const total: AssemblerOutput = { frames: [], keyframeNeeded: false, dropped: 0 };
  for (const p of packets) {
    const out = a.push(p, now);
    total.frames.push(...out.frames);
    total.keyframeNeeded ||= out.keyframeNeeded;
    total.dropped += out.dropped;
  }
  return total;
}

function expectFrames(got: Vp8Frame[], want: TestFrame[]): void {
  expect(got.map((f) => f.timestamp)).toEqual(want.map((f) => f.timestamp));
  got.forEach((f, i) => {
    expect(f.isKeyframe).toBe(want[i].key);
    expect(f.data.equals(want[i].data), `frame ${i} data`).toBe(true);
  });
}

/** A keyframe followed by inter frames, each `parts` packets, consecutive sequence numbers. */
function stream(count: number, opts: { seq?: number; ts?: number; parts?: number; keyAt?: number[] } = {}): TestFrame[] {
  const frames: TestFrame[] = [];
  let seq = opts.seq ?? 1000;
  const parts = opts.parts ?? 3;
  for (let i = 0; i < count; i++) {
    const key = (opts.keyAt ?? [0]).includes(i);
    frames.push(frame({ seq, ts: ((opts.ts ?? 90_000) + i * 3000) >>> 0, key, parts, id: i }));
    seq = (seq + parts) & 0xffff;
  }
  return frames;
}

describe("Vp8FrameAssembler", () => {
  it("emits in-order multi-packet frames once their marker packet arrives", () => {
    const a = new Vp8FrameAssembler();
    const [key, inter] = stream(2);
    expect(a.push(key.packets[0], 0).frames).toEqual([]);
    expect(a.push(key.packets[1], 0).frames).toEqual([]);
    const out = a.push(key.packets[2], 0);
    expectFrames(out.frames, [key]);
    expect(out.keyframeNeeded).toBe(false);
    expectFrames(pushAll(a, inter.packets).frames, [inter]);
  });

  it("strips the payload descriptor and concatenates the VP8 data", () => {
    const a = new Vp8FrameAssembler();
    const key = frame({ seq: 7, ts: 1, key: true, parts: 4 });
    const [f] = pushAll(a, key.packets).frames;
    expect(f.data.subarray(0, 6)).toEqual(Buffer.from([0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a]));
    expect(f.data.equals(key.data)).toBe(true);
    expect(f).toMatchObject({ timestamp: 1, isKeyframe: true });
  });

  it("accepts single-packet frames", () => {
    const a = new Vp8FrameAssembler();
    const frames = stream(5, { parts: 1 });
    const out = pushAll(a, frames.flatMap((f) => f.packets));
    expectFrames(out.frames, frames);
  });

  it("reorders packets within the window", () => {
    const a = new Vp8FrameAssembler();
    const frames = stream(4);
    const p = frames.flatMap((f) => f.packets);
    // Keyframe in order, then the next frames shuffled, including a start arriving after its tail.
    const order = [0, 1, 2, 5, 3, 4, 8, 7, 11, 6, 10, 9];
    const out = pushAll(a, order.map((i) => p[i]));
    expectFrames(out.frames, frames);
    expect(out.keyframeNeeded).toBe(false);
    expect(out.dropped).toBe(0);
  });

  it("emits frames in order even when a later frame completes first", () => {
    const a = new Vp8FrameAssembler();
    const [key, f1, f2] = stream(3);
    pushAll(a, key.packets);
    // f2 arrives whole before f1's middle packet.
    let out = pushAll(a, [f1.packets[0], f1.packets[2], ...f2.packets], 10);
    expect(out.frames).toEqual([]);
    out = pushAll(a, [f1.packets[1]], 20);
    expectFrames(out.frames, [f1, f2]);
  });

  it("handles sequence-number wraparound at 65535 -> 0", () => {
    const a = new Vp8FrameAssembler();
    const frames = stream(5, { seq: 65530 });
    const seqs = frames.flatMap((f) => f.packets.map((p) => p.header.sequenceNumber));
    expect(seqs).toContain(65535);
    expect(seqs).toContain(0);
    const p = frames.flatMap((f) => f.packets);
    // Reorder across the wrap too: 0 (index 6) before 65535 (index 5).
    const order = [0, 1, 2, 3, 4, 6, 5, 7, 8, 9, 10, 11, 12, 13, 14];
    const out = pushAll(a, order.map((i) => p[i]));
    expectFrames(out.frames, frames);
    expect(out.keyframeNeeded).toBe(false);
  });

  it("a frame split across the wrap is reassembled", () => {
    const a = new Vp8FrameAssembler();
    const key = frame({ seq: 65534, ts: 5, key: true, parts: 4 }); // 65534, 65535, 0, 1
    const out = pushAll(a, key.packets);
    expectFrames(out.frames, [key]);
  });

  it("ignores duplicate packets", () => {
    const a = new Vp8FrameAssembler();
    const [key, f1, f2] = stream(3);
    let out = pushAll(a, [key.packets[0], key.packets[0], key.packets[1], key.packets[1], key.packets[2]]);
    expectFrames(out.frames, [key]);
    // Duplicates of an already emitted frame produce nothing.
    out = pushAll(a, key.packets);
    expect(out.frames).toEqual([]);
    expect(out.keyframeNeeded).toBe(false);
    out = pushAll(a, [...f1.packets, f1.packets[2], f1.packets[0], ...f2.packets, f2.packets[1]]);
    expectFrames(out.frames, [f1, f2]);
    expect(out.keyframeNeeded).toBe(false);
  });

  it("ignores empty (padding-only) packets", () => {
    const a = new Vp8FrameAssembler();
    const out = a.push({ header: { sequenceNumber: 1, timestamp: 1, marker: false }, payload: Buffer.alloc(0) }, 0);
    expect(out).toEqual({ frames: [], keyframeNeeded: false, dropped: 0 });
  });

  it("the first frame emitted is a keyframe: earlier inter frames are dropped and request one", () => {
    const a = new Vp8FrameAssembler();
    const frames = stream(4, { keyAt: [2] }); // inter, inter, KEY, inter
    let out = pushAll(a, frames[0].packets);
    expect(out.frames).toEqual([]);
    expect(out.keyframeNeeded).toBe(true);
    out = pushAll(a, frames[1].packets);
    expect(out.frames).toEqual([]);
    expect(out.keyframeNeeded).toBe(true);
    out = pushAll(a, [...frames[2].packets, ...frames[3].packets]);
    expectFrames(out.frames, [frames[2], frames[3]]);
    expect(out.keyframeNeeded).toBe(false);
    expect(out.dropped).toBeGreaterThan(0); // the inter frames held before it are discarded
  });

  it("does not lose the first keyframe when a later inter frame's packet arrives first", () => {
    const a = new Vp8FrameAssembler();
    const [key, inter] = stream(2, { keyAt: [0] });
    let out = pushAll(a, inter.packets);
    expect(out.frames).toEqual([]);
    out = pushAll(a, key.packets);
    expectFrames(out.frames, [key, inter]);
  });

  it("a stream joined mid-frame starts at the next frame start", () => {
    const a = new Vp8FrameAssembler();
    const [, , , key, f4] = stream(5, { keyAt: [0, 3] });
    const tail = stream(3, { keyAt: [0] })[2].packets.slice(1); // continuation packets with no head
    let out = pushAll(a, tail);
    expect(out.frames).toEqual([]);
    out = pushAll(a, [...key.packets, ...f4.packets]);
    expectFrames(out.frames, [key, f4]);
  });

  describe("unrepaired loss", () => {
    const MAX_WAIT = 120;

    it("waits maxWaitMs, drops the broken frame, requests a keyframe and drops inter frames until it", () => {
      const a = new Vp8FrameAssembler(MAX_WAIT);
      const [key, f1, f2, f3, key2, f5] = stream(6, { keyAt: [0, 4] });
      expectFrames(pushAll(a, key.packets, 0).frames, [key]);

      // f1 loses its middle packet; f2 arrives complete behind the hole: nothing can be emitted yet.
      let out = pushAll(a, [f1.packets[0], f1.packets[2]], 33);
      out = pushAll(a, f2.packets, 66);
      expect(out.frames).toEqual([]);
      expect(out.keyframeNeeded).toBe(false);

      // Still inside the wait (oldest packet arrived at 33).
      out = a.push(f3.packets[0], 33 + MAX_WAIT);
      expect(out.frames).toEqual([]);
      expect(out.keyframeNeeded).toBe(false);

      // Past the wait: f1 is given up, a keyframe is requested, and f2/f3 (inter frames that
      // reference the broken f1) are dropped instead of emitted.
      out = pushAll(a, f3.packets.slice(1), 33 + MAX_WAIT + 1);
      expect(out.frames).toEqual([]);
      expect(out.keyframeNeeded).toBe(true);
      expect(out.dropped).toBeGreaterThan(0);

      // The next keyframe is emitted, then the stream flows again.
      out = pushAll(a, [...key2.packets, ...f5.packets], 300);
      expectFrames(out.frames, [key2, f5]);
      expect(out.keyframeNeeded).toBe(false);
    });

    it("keeps dropping inter frames that arrive after the give-up until a keyframe", () => {
      const a = new Vp8FrameAssembler(MAX_WAIT);
      const [key, f1, f2, f3, f4, key2] = stream(6, { keyAt: [0, 5] });
      pushAll(a, key.packets, 0);
      pushAll(a, [f1.packets[0], f1.packets[1]], 10); // f1's marker packet never comes
      let out = pushAll(a, [f2.packets[0]], 200); // overdue: f1 dropped, skip to f2
      expect(out.keyframeNeeded).toBe(true);
      expect(out.frames).toEqual([]);
      for (const f of [f2, f3, f4]) {
        out = pushAll(a, f === f2 ? f.packets.slice(1) : f.packets, 210);
        expect(out.frames).toEqual([]);
        expect(out.dropped).toBeGreaterThan(0);
      }
      out = pushAll(a, key2.packets, 230);
      expectFrames(out.frames, [key2]);
      expect(out.keyframeNeeded).toBe(false);
    });

    it("a lost frame start is given up the same way", () => {
      const a = new Vp8FrameAssembler(MAX_WAIT);
      const [key, f1, f2, key2] = stream(4, { keyAt: [0, 3] });
      pushAll(a, key.packets, 0);
      let out = pushAll(a, f1.packets.slice(1), 10); // head of f1 lost
      out = pushAll(a, f2.packets, 20);
      expect(out.frames).toEqual([]);
      out = pushAll(a, key2.packets, 10 + MAX_WAIT + 5);
      expect(out.keyframeNeeded).toBe(true);
      expectFrames(out.frames, [key2]);
    });

    it("a retransmission that fills the hole in time yields the frame", () => {
      const a = new Vp8FrameAssembler(MAX_WAIT);
      const [key, f1, f2, f3] = stream(4);
      pushAll(a, key.packets, 0);
      let out = pushAll(a, [f1.packets[0], f1.packets[2], ...f2.packets], 33);
      expect(out.frames).toEqual([]);
      out = pushAll(a, [f3.packets[0]], 100);
      expect(out.frames).toEqual([]);
      // NACKed packet arrives 117 ms after the hole appeared: f1, f2 and then f3 come out whole.
      out = pushAll(a, [f1.packets[1], f3.packets[1], f3.packets[2]], 33 + MAX_WAIT - 3);
      expectFrames(out.frames, [f1, f2, f3]);
      expect(out.keyframeNeeded).toBe(false);
      expect(out.dropped).toBe(0);
    });

    it("a late duplicate of an emitted packet does not shorten the wait for a hole", () => {
      const a = new Vp8FrameAssembler(MAX_WAIT);
      const [key, f1, f2] = stream(3);
      pushAll(a, key.packets, 0);
      pushAll(a, [key.packets[1]], 10); // stale duplicate
      pushAll(a, [f1.packets[0], f1.packets[2]], 100);
      // 190 ms after the duplicate but only 100 ms after the hole appeared: keep waiting.
      let out = pushAll(a, f2.packets, 200);
      expect(out.keyframeNeeded).toBe(false);
      out = pushAll(a, [f1.packets[1]], 210);
      expectFrames(out.frames, [f1, f2]);
    });

    it("a frame whose marker bit never comes is not merged into the next frame", () => {
      const a = new Vp8FrameAssembler(MAX_WAIT);
      const [key, f1, f2, key2] = stream(4, { keyAt: [0, 3] });
      pushAll(a, key.packets, 0);
      const noMarker = f1.packets.map((p) => ({ ...p, header: { ...p.header, marker: false } }));
      let out = pushAll(a, [...noMarker, ...f2.packets], 10);
      expect(out.frames).toEqual([]);
      out = pushAll(a, key2.packets, 200);
      expect(out.keyframeNeeded).toBe(true);
      expectFrames(out.frames, [key2]);
    });

    it("gives a hole up without waiting once maxPackets are buffered", () => {
      const a = new Vp8FrameAssembler(10_000, 8);
      const [key, f1, f2, f3, key2] = stream(5, { keyAt: [0, 4] });
      pushAll(a, key.packets, 0);
      pushAll(a, [f1.packets[0], f1.packets[2], ...f2.packets], 1); // 5 buffered, hole in f1
      expect(pushAll(a, f3.packets, 2).keyframeNeeded).toBe(true); // 8 buffered: give up now
      expectFrames(pushAll(a, key2.packets, 3).frames, [key2]);
    });

    it("a retransmission arriving after the frame was given up is ignored", () => {
      const a = new Vp8FrameAssembler(MAX_WAIT);
      const [key, f1, key2, f3] = stream(4, { keyAt: [0, 2] });
      pushAll(a, key.packets, 0);
      pushAll(a, [f1.packets[0], f1.packets[2]], 10);
      let out = pushAll(a, key2.packets, 200);
      expect(out.keyframeNeeded).toBe(true);
      expectFrames(out.frames, [key2]);
      out = pushAll(a, [f1.packets[1]], 210); // too late
      expect(out.frames).toEqual([]);
      expect(out.keyframeNeeded).toBe(false);
      expectFrames(pushAll(a, f3.packets, 220).frames, [f3]);
    });
  });
});
