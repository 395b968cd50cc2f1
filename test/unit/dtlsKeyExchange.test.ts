// werift's DTLS key exchange as patched in patches/werift+0.25.2.patch (see patches/README.md):
// OpenSSL's X25519 and P-256 instead of tweetnacl and @noble/curves. The patched helpers are not
// exported by werift, so they are taken out of the installed bundle's text and checked against the
// libraries werift 0.25.2 used: the same key formats, the same shared secrets, the same answer
// (from the original code) for inputs OpenSSL refuses. Every call test's handshakes with Chromium
// and Firefox check the same against other DTLS implementations.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
// What werift 0.25.2 itself used (its dependencies).
import nacl from "tweetnacl";
import { p256 } from "@noble/curves/p256";

interface Pair {
  privateKey: Buffer;
  publicKey: Buffer;
}
interface Patched {
  mixroomX25519Keypair(): Pair;
  mixroomX25519Secret(pub: Buffer, priv: Buffer): Buffer;
  mixroomP256Keypair(): Pair;
  mixroomP256Secret(pub: Buffer, priv: Buffer): Buffer | undefined;
}

function patchedHelpers(): Patched {
  // The ESM bundle `import "werift"` resolves to (the one the patch changes).
  const bundle = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "node_modules", "werift", "lib", "index.mjs");
  const src = fs.readFileSync(bundle, "utf8");
  const start = src.indexOf("var MIXROOM_X25519_PKCS8");
  const end = src.indexOf("// ../dtls/src/cipher/ec.ts", start);
  expect(start, "the DTLS key exchange patch is applied").toBeGreaterThan(0);
  const names = ["Buffer", "nacl", "mixroomCreateECDH", "mixroomCreatePrivateKey", "mixroomCreatePublicKey", "mixroomDiffieHellman", "mixroomGenerateKeyPairSync"];
  const body = `${src.slice(start, end)}; return { mixroomX25519Keypair, mixroomX25519Secret, mixroomP256Keypair, mixroomP256Secret };`;
  return new Function(...names, body)(Buffer, nacl, crypto.createECDH, crypto.createPrivateKey, crypto.createPublicKey, crypto.diffieHellman, crypto.generateKeyPairSync) as Patched;
}

describe("werift's DTLS key exchange in OpenSSL", () => {
  const m = patchedHelpers();

  it("X25519: 32-byte keys as tweetnacl's, the same shared secret both ways", () => {
    for (let i = 0; i < 200; i++) {
      const ours = m.mixroomX25519Keypair();
      const theirs = nacl.box.keyPair();
      expect(ours.privateKey.length).toBe(32);
      expect(Buffer.from(nacl.scalarMult.base(ours.privateKey)).equals(ours.publicKey)).toBe(true);
      const secret = m.mixroomX25519Secret(Buffer.from(theirs.publicKey), ours.privateKey);
      expect(secret.equals(Buffer.from(nacl.scalarMult(ours.privateKey, theirs.publicKey)))).toBe(true);
      expect(secret.equals(Buffer.from(nacl.scalarMult(theirs.secretKey, ours.publicKey)))).toBe(true);
    }
  });

  it("X25519: a point OpenSSL refuses (all zeros, low order) gets the original's answer; a wrong size still throws", () => {
    const { privateKey } = m.mixroomX25519Keypair();
    const zero = Buffer.alloc(32);
    expect(m.mixroomX25519Secret(zero, privateKey).equals(Buffer.from(nacl.scalarMult(privateKey, zero)))).toBe(true);
    expect(() => m.mixroomX25519Secret(Buffer.alloc(31), privateKey)).toThrow();
  });

  it("P-256: a 32-byte scalar and a 65-byte point as @noble/curves', the same shared secret (the x coordinate)", () => {
    for (let i = 0; i < 100; i++) {
      const ours = m.mixroomP256Keypair();
      const theirs = p256.utils.randomPrivateKey();
      expect(ours.privateKey.length).toBe(32);
      expect(Buffer.from(p256.getPublicKey(ours.privateKey, false)).equals(ours.publicKey)).toBe(true);
      const theirPub = Buffer.from(p256.getPublicKey(theirs, false));
      const want = Buffer.from(p256.getSharedSecret(ours.privateKey, theirPub)).subarray(1);
      expect(m.mixroomP256Secret(theirPub, ours.privateKey)!.equals(want)).toBe(true);
    }
    // A point not on the curve: left to the original code (which throws).
    expect(m.mixroomP256Secret(Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 1)]), m.mixroomP256Keypair().privateKey)).toBeUndefined();
  });
});
