// Raw yuv420p canvases wrapped in Matroska, as an encoder child's input. Plain rawvideo carries no
// timestamps; Matroska carries one per frame, and that is how a running ffmpeg is told "make this
// frame a keyframe": the child's -force_key_frames expression fires on an odd timestamp (in
// 1/100000 s), and every other frame's timestamp is even. So a keyframe on request costs one frame
// of the running encoder — no second child, no restart. Pure: bytes in, bytes out.

/** Timestamps in 10 µs units (TimecodeScale 10,000 ns): fine enough that the odd/even signal moves a frame by 10 µs. */
export const MKV_TIME_UNITS_PER_S = 100_000;

/** The child's options that read the signal (after -i, before the codec). */
export function keyframeSignalArgs(): string[] {
  return [
    "-vsync", "passthrough", // every frame, with its own timestamp (no frame-rate conversion)
    "-enc_time_base", `1:${MKV_TIME_UNITS_PER_S}`, // the encoder sees the timestamps unrounded
    "-force_key_frames", `expr:eq(mod(round(t*${MKV_TIME_UNITS_PER_S}),2),1)`,
  ];
}

/** The input options of a child reading a stream written by MatroskaRawWriter. */
export function matroskaInputArgs(): string[] {
  return ["-probesize", "32", "-analyzeduration", "0", "-copyts", "-f", "matroska", "-i", "pipe:0"];
}

const ID = {
  ebml: 0x1a45dfa3, docType: 0x4282, docTypeVersion: 0x4287, docTypeReadVersion: 0x4285,
  segment: 0x18538067, info: 0x1549a966, timecodeScale: 0x2ad7b1, muxingApp: 0x4d80, writingApp: 0x5741,
  tracks: 0x1654ae6b, trackEntry: 0xae, trackNumber: 0xd7, trackUid: 0x73c5, trackType: 0x83, codecId: 0x86,
  video: 0xe0, pixelWidth: 0xb0, pixelHeight: 0xba, colourSpace: 0x2eb524,
  cluster: 0x1f43b675, timecode: 0xe7, simpleBlock: 0xa3,
} as const;

function idBytes(id: number): Buffer {
  const bytes: number[] = [];
  for (let v = id; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from(bytes);
}

/** An 8-byte EBML size (any size up to 2^56 − 2, so a frame's size never changes the header's length). */
function size8(n: number): Buffer {
  const b = Buffer.alloc(8);
  b[0] = 0x01;
  b.writeUIntBE(Math.floor(n / 2 ** 32) & 0xffffff, 1, 3);
  b.writeUInt32BE(n >>> 0, 4);
  return b;
}

function uintBytes(n: number): Buffer {
  const bytes: number[] = [];
  let v = n;
  do {
    bytes.unshift(v % 256);
    v = Math.floor(v / 256);
  } while (v > 0);
  return Buffer.from(bytes);
}

const element = (id: number, data: Buffer) => Buffer.concat([idBytes(id), size8(data.length), data]);
const uintElement = (id: number, n: number) => element(id, uintBytes(n));
const text = (id: number, s: string) => element(id, Buffer.from(s, "latin1"));

/** The stream's header: EBML, a live Segment (unknown size), Info and one V_UNCOMPRESSED I420 track. */
export function matroskaRawHeader(width: number, height: number): Buffer {
  const ebml = element(ID.ebml, Buffer.concat([text(ID.docType, "matroska"), uintElement(ID.docTypeVersion, 4), uintElement(ID.docTypeReadVersion, 2)]));
  const segment = Buffer.concat([idBytes(ID.segment), Buffer.from("01ffffffffffffff", "hex")]);
  const info = element(ID.info, Buffer.concat([uintElement(ID.timecodeScale, 1e9 / MKV_TIME_UNITS_PER_S), text(ID.muxingApp, "mixroom"), text(ID.writingApp, "mixroom")]));
  const video = element(ID.video, Buffer.concat([uintElement(ID.pixelWidth, width), uintElement(ID.pixelHeight, height), element(ID.colourSpace, Buffer.from("I420", "latin1"))]));
  const track = element(ID.trackEntry, Buffer.concat([uintElement(ID.trackNumber, 1), uintElement(ID.trackUid, 1), uintElement(ID.trackType, 1), text(ID.codecId, "V_UNCOMPRESSED"), video]));
  return Buffer.concat([ebml, segment, info, element(ID.tracks, track)]);
}

/**
 * The bytes before one frame: a Cluster holding its timestamp and one SimpleBlock whose payload is
 * the `frameBytes` of the frame, written right after. Timestamps must increase.
 */
export function matroskaFrameHeader(timestamp: number, frameBytes: number): Buffer {
  const blockHead = Buffer.from([0x81, 0, 0, 0x80]); // track 1, relative time 0, a keyframe (every raw frame is)
  const timecode = uintElement(ID.timecode, timestamp);
  const blockSize = blockHead.length + frameBytes;
  const clusterSize = timecode.length + 1 + 8 + blockSize;
  return Buffer.concat([idBytes(ID.cluster), size8(clusterSize), timecode, idBytes(ID.simpleBlock), size8(blockSize), blockHead]);
}

/**
 * The timestamp of the `n`th frame a child is given (the first is 0), at `fps`, odd when it must be
 * a keyframe. `n` counts canvas ticks since the child started, so a skipped tick leaves a gap (the
 * encoder's rate control sees the real time between frames).
 */
export function signalledTimestamp(n: number, fps: number, keyframe: boolean): number {
  const even = 2 * Math.round((n * MKV_TIME_UNITS_PER_S) / fps / 2);
  return keyframe && n > 0 ? even + 1 : even;
}
