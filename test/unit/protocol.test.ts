import { describe, expect, it } from "vitest";
import { ProtocolError, ROOM_RE, parseClientMessage, type ErrorCode } from "../../server/protocol.ts";

const MAX = 64 * 1024;
const parse = (msg: unknown, max = MAX) => parseClientMessage(typeof msg === "string" ? msg : JSON.stringify(msg), max);

/** The ProtocolError a raw message is rejected with. */
function rejection(raw: string | Buffer, max = MAX): ProtocolError {
  try {
    parseClientMessage(raw, max);
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError);
    return e as ProtocolError;
  }
  throw new Error(`accepted: ${raw.toString().slice(0, 80)}`);
}

function expectRejected(msg: unknown, code: ErrorCode, messageMatch?: RegExp, max = MAX): void {
  const e = rejection(typeof msg === "string" ? msg : JSON.stringify(msg), max);
  expect(e.code).toBe(code);
  if (messageMatch) expect(e.message).toMatch(messageMatch);
}

describe("parseClientMessage: valid messages", () => {
  it("join", () => {
    expect(parse({ type: "join", room: "team-1_A", name: "Ada" })).toEqual({ type: "join", room: "team-1_A", name: "Ada" });
  });

  it("join trims the name", () => {
    expect(parse({ type: "join", room: "r", name: "  Ada Lovelace \n" })).toMatchObject({ name: "Ada Lovelace" });
  });

  it("offer", () => {
    const sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n";
    expect(parse({ type: "offer", sdp })).toEqual({ type: "offer", sdp });
  });

  it("candidate with all fields", () => {
    const candidate = {
      candidate: "candidate:1 1 udp 2130706431 192.168.1.2 50000 typ host",
      sdpMid: "0",
      sdpMLineIndex: 0,
      usernameFragment: "abcd",
    };
    expect(parse({ type: "candidate", candidate })).toEqual({ type: "candidate", candidate });
  });

  it("candidate with only the candidate string, or null optional fields", () => {
    expect(parse({ type: "candidate", candidate: { candidate: "" } })).toEqual({ type: "candidate", candidate: { candidate: "" } });
    const nulls = { candidate: "candidate:x", sdpMid: null, sdpMLineIndex: null, usernameFragment: null };
    expect(parse({ type: "candidate", candidate: nulls })).toEqual({ type: "candidate", candidate: nulls });
  });

  it("candidate null (end of candidates)", () => {
    expect(parse({ type: "candidate", candidate: null })).toEqual({ type: "candidate", candidate: null });
  });

  it("leave", () => {
    expect(parse({ type: "leave" })).toEqual({ type: "leave" });
  });

  it("accepts a Buffer", () => {
    expect(parseClientMessage(Buffer.from(JSON.stringify({ type: "leave" })), MAX)).toEqual({ type: "leave" });
  });

  it("strips unknown extra fields", () => {
    expect(parse({ type: "leave", extra: 1 })).toEqual({ type: "leave" });
  });
});

describe("parseClientMessage: framing errors", () => {
  it.each(["", "not json", "{", "{'type':'leave'}", '{"type":"leave"', "undefined"])("non-JSON %j -> bad_json", (raw) => {
    expectRejected(raw, "bad_json");
  });

  it.each([
    ["a number", "42"],
    ["a string", '"join"'],
    ["null", "null"],
    ["true", "true"],
    ["an array", '[{"type":"leave"}]'],
  ])("%s -> invalid_message", (_what, raw) => {
    expectRejected(raw, "invalid_message", /type/);
  });

  it.each([
    ["no type", {}],
    ["a numeric type", { type: 1 }],
    ["a null type", { type: null }],
    ["an object type", { type: { join: true } }],
  ])("%s -> invalid_message", (_what, msg) => {
    expectRejected(msg, "invalid_message", /type/);
  });

  it.each(["hello", "JOIN", "Join", "answer", "__proto__", "constructor", ""])("unknown type %j -> unknown_type", (type) => {
    expectRejected({ type, room: "r", name: "n" }, "unknown_type");
  });

  it("quotes a long unknown type only partly", () => {
    const e = rejection(JSON.stringify({ type: "x".repeat(1000) }));
    expect(e.code).toBe("unknown_type");
    expect(e.message.length).toBeLessThan(100);
  });

  it("too large -> too_large, before any parsing", () => {
    const big = JSON.stringify({ type: "offer", sdp: "x".repeat(200) });
    const e = rejection(big, 100);
    expect(e.code).toBe("too_large");
    expect(e.message).toContain("100");
    expect(rejection("not json at all, but long", 10).code).toBe("too_large");
  });

  it("the limit is inclusive and counts bytes, not characters", () => {
    const msg = JSON.stringify({ type: "join", room: "r", name: "é".repeat(10) });
    const bytes = Buffer.byteLength(msg);
    expect(bytes).toBeGreaterThan(msg.length);
    expect(parseClientMessage(msg, bytes)).toMatchObject({ type: "join" });
    expect(rejection(msg, bytes - 1).code).toBe("too_large");
    expect(rejection(msg, msg.length).code).toBe("too_large");
    expect(rejection(Buffer.from(msg), bytes - 1).code).toBe("too_large");
  });
});

describe("parseClientMessage: invalid fields", () => {
  it.each([
    ["join without room", { type: "join", name: "n" }, /room/],
    ["join with numeric room", { type: "join", room: 5, name: "n" }, /room/],
    ["join without name", { type: "join", room: "r" }, /name/],
    ["join with numeric name", { type: "join", room: "r", name: 5 }, /name/],
    ["join with blank name", { type: "join", room: "r", name: "   " }, /name/],
    ["join with a 65-character name", { type: "join", room: "r", name: "n".repeat(65) }, /name/],
    ["offer without sdp", { type: "offer" }, /sdp/],
    ["offer with empty sdp", { type: "offer", sdp: "" }, /sdp/],
    ["offer with numeric sdp", { type: "offer", sdp: 1 }, /sdp/],
    ["offer with a huge sdp", { type: "offer", sdp: "x".repeat(64 * 1024 + 1) }, /sdp/],
    ["candidate without candidate", { type: "candidate" }, /candidate/],
    ["candidate as a string", { type: "candidate", candidate: "candidate:1 1 udp 1 1.2.3.4 5 typ host" }, /candidate/],
    ["candidate.candidate missing", { type: "candidate", candidate: {} }, /candidate\.candidate/],
    ["candidate.candidate numeric", { type: "candidate", candidate: { candidate: 1 } }, /candidate\.candidate/],
    ["candidate.candidate too long", { type: "candidate", candidate: { candidate: "c".repeat(1025) } }, /candidate\.candidate/],
    ["negative sdpMLineIndex", { type: "candidate", candidate: { candidate: "c", sdpMLineIndex: -1 } }, /sdpMLineIndex/],
    ["fractional sdpMLineIndex", { type: "candidate", candidate: { candidate: "c", sdpMLineIndex: 0.5 } }, /sdpMLineIndex/],
    ["numeric sdpMid", { type: "candidate", candidate: { candidate: "c", sdpMid: 0 } }, /sdpMid/],
  ])("%s -> invalid_message naming the field", (_what, msg, field) => {
    // A generous size limit so the 64 KiB sdp cap itself is what rejects the huge offer.
    expectRejected(msg, "invalid_message", field, 1 << 20);
  });

  it("the message names the message type too", () => {
    expect(rejection(JSON.stringify({ type: "offer" })).message).toMatch(/^offer: sdp: /);
  });
});

describe("room names", () => {
  it.each(["a", "Z", "0", "room-1", "team_A", "-_-", "x".repeat(64)])("accepts %j", (room) => {
    expect(ROOM_RE.test(room)).toBe(true);
    expect(parse({ type: "join", room, name: "n" })).toMatchObject({ room });
  });

  it.each(["", "x".repeat(65), "has space", "a/b", "a.b", "../etc", "ü", "room\n", "a:b", "%20"])("rejects %j", (room) => {
    expect(ROOM_RE.test(room)).toBe(false);
    expectRejected({ type: "join", room, name: "n" }, "invalid_message", /room/);
  });
});
