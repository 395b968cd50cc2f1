import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { iceServersFor, turnCredential } from "../../server/turn.ts";

describe("TURN REST credentials", () => {
  it("mints username = expiry:id and credential = base64(HMAC-SHA1(secret, username))", () => {
    const c = turnCredential("sekrit", "room-1-abc", 600, 1_700_000_000_000);
    expect(c.username).toBe("1700000600:room-1-abc");
    expect(c.credential).toBe(createHmac("sha1", "sekrit").update("1700000600:room-1-abc").digest("base64"));
    // A known vector, computed with openssl: printf 1:x | openssl dgst -sha1 -hmac s -binary | base64
    expect(turnCredential("s", "x", 1, 0).credential).toBe("TZ/t3fMRAbe6a9cV5a3T4pA+Ib8=");
  });

  it("hands out configured servers, STUN, and TURN with per-participant credentials", () => {
    const s = { iceServers: [{ urls: "stun:fixed" }], stunUrls: ["stun:s"], turnUrls: ["turn:t"], turnSecret: "k", turnTtlS: 60 };
    const a = iceServersFor("a", s, 0);
    const b = iceServersFor("b", s, 0);
    expect(a[0]).toEqual({ urls: "stun:fixed" });
    expect(a[1]).toEqual({ urls: ["stun:s"] });
    expect(a[2]).toMatchObject({ urls: ["turn:t"], username: "60:a" });
    expect(b[2].credential).not.toBe(a[2].credential);
    expect(iceServersFor("a", { ...s, turnSecret: undefined }, 0)).toHaveLength(2);
  });
});
