// Room tokens: HS256 JWTs that say who may join which room with which rights.
// Minted by `npm run token` and POST /api/rooms/:room/tokens; checked on `join`.
import { randomUUID } from "node:crypto";
import { SignJWT, errors, jwtVerify } from "jose";
import { ROOM_RE } from "./protocol.ts";

export type Right = "publish" | "subscribe" | "record" | "moderate";
export const ALL_RIGHTS: readonly Right[] = ["publish", "subscribe", "record", "moderate"];
export const DEFAULT_RIGHTS: readonly Right[] = ["publish", "subscribe"];

export const ISSUER = "mixroom";
export const AUDIENCE = "mixroom-join";
export const MIN_TTL_S = 10;
export const MAX_TTL_S = 365 * 86_400;
/** Longer tokens are refused unread: ours are well under 1 KB, and parsing costs before the signature is known good. */
export const MAX_TOKEN_BYTES = 4096;
const CLOCK_TOLERANCE_S = 5;

export interface RoomGrant {
  room: string;
  name: string;
  /** The token's `sub`: a stable id for the person, chosen by whoever minted it. */
  identity: string;
  rights: Right[];
  /** `exp`, epoch seconds. */
  expiresAt: number;
  /** `jti`, unique per token (for logs, revocation lists). */
  tokenId: string;
}

export interface MintRequest {
  room: string;
  name: string;
  identity?: string;
  rights?: readonly Right[];
  ttlS: number;
}

/** The token cannot be used: `unauthorized` = not a valid token of ours, `forbidden` = valid, but not for this. */
export class TokenError extends Error {
  constructor(
    readonly code: "unauthorized" | "forbidden",
    message: string,
  ) {
    super(message);
    this.name = "TokenError";
  }
}

/** What was asked for cannot be put in a token (a 400, not a 401). */
export class TokenInputError extends Error {
  override name = "TokenInputError";
}

export function isRight(r: unknown): r is Right {
  return typeof r === "string" && (ALL_RIGHTS as readonly string[]).includes(r);
}

function key(secret: string): Uint8Array {
  // loadConfig enforces this too; a short key here is a programming error, not a client's.
  if (typeof secret !== "string" || secret.length < 32) throw new Error("room token secret must be at least 32 characters");
  return new TextEncoder().encode(secret);
}

/** The length the signaling `join` uses for names (code units, like zod's max). */
function checkName(name: unknown): string {
  const n = typeof name === "string" ? name.trim() : "";
  if (n.length < 1 || n.length > 64) throw new TokenInputError("name must be 1-64 characters");
  return n;
}

function checkRights(rights: unknown): Right[] {
  if (!Array.isArray(rights)) throw new TokenInputError(`rights must be a list of ${ALL_RIGHTS.join(", ")}`);
  const bad = rights.find((r) => !isRight(r));
  if (bad !== undefined) throw new TokenInputError(`unknown right "${String(bad).slice(0, 40)}" (known: ${ALL_RIGHTS.join(", ")})`);
  return [...new Set(rights as Right[])];
}

export async function mintRoomToken(secret: string, g: MintRequest): Promise<{ token: string; grant: RoomGrant }> {
  const k = key(secret);
  if (typeof g.room !== "string" || !ROOM_RE.test(g.room)) throw new TokenInputError("room must be 1-64 characters of A-Z a-z 0-9 _ -");
  const name = checkName(g.name);
  let identity: string;
  if (g.identity === undefined) identity = randomUUID();
  else {
    identity = typeof g.identity === "string" ? g.identity.trim() : "";
    if (identity.length < 1 || identity.length > 128) throw new TokenInputError("identity must be 1-128 characters");
  }
  const rights = checkRights(g.rights ?? DEFAULT_RIGHTS);
  if (!Number.isInteger(g.ttlS) || g.ttlS < MIN_TTL_S || g.ttlS > MAX_TTL_S) {
    throw new TokenInputError(`ttl must be a whole number of seconds in [${MIN_TTL_S}, ${MAX_TTL_S}]`);
  }
  const iat = Math.floor(Date.now() / 1000);
  const grant: RoomGrant = { room: g.room, name, identity, rights, expiresAt: iat + g.ttlS, tokenId: randomUUID() };
  const token = await new SignJWT({ room: grant.room, name, rights })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(identity)
    .setJti(grant.tokenId)
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(grant.expiresAt)
    .sign(k);
  return { token, grant };
}

/**
 * Checks a token for joining `room`. Resolves to its grant, or throws TokenError
 * (`unauthorized` for anything wrong with the token itself, `forbidden` for another room's token).
 * `token` may be undefined/empty (a join without one): that is `unauthorized` too.
 */
export async function verifyRoomToken(secret: string, token: string | undefined | null, room: string): Promise<RoomGrant> {
  const k = key(secret);
  if (typeof token !== "string" || token === "") throw new TokenError("unauthorized", "this room needs a token");
  if (token.length > MAX_TOKEN_BYTES) throw new TokenError("unauthorized", `token is over ${MAX_TOKEN_BYTES} bytes`);
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, k, {
      algorithms: ["HS256"],
      issuer: ISSUER,
      audience: AUDIENCE,
      clockTolerance: CLOCK_TOLERANCE_S,
      requiredClaims: ["exp", "sub", "jti"],
    }));
  } catch (err) {
    throw new TokenError("unauthorized", describe(err));
  }
  // Signed by us, so these hold unless the secret is shared with another issuer: still check, never trust shapes.
  const { room: r, name, rights, sub, jti, exp } = payload;
  if (typeof r !== "string" || !ROOM_RE.test(r)) throw new TokenError("unauthorized", "token has no valid room");
  if (typeof name !== "string" || name.trim().length < 1 || name.trim().length > 64) throw new TokenError("unauthorized", "token has no valid name");
  if (typeof sub !== "string" || sub === "" || typeof jti !== "string" || jti === "") throw new TokenError("unauthorized", "token has no valid sub/jti");
  let granted: Right[];
  try {
    granted = rights === undefined ? [...DEFAULT_RIGHTS] : checkRights(rights);
  } catch (err) {
    throw new TokenError("unauthorized", `token rights: ${(err as Error).message}`);
  }
  if (r !== room) throw new TokenError("forbidden", `token is for room ${r}`);
  return { room: r, name: name.trim(), identity: sub, rights: granted, expiresAt: exp as number, tokenId: jti };
}

function describe(err: unknown): string {
  if (err instanceof errors.JWTExpired) {
    const exp = err.payload.exp;
    return typeof exp === "number" ? `token expired at ${new Date(exp * 1000).toISOString()}` : "token expired";
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return "token signature is not valid";
  if (err instanceof errors.JOSEAlgNotAllowed) return "token algorithm is not allowed (HS256 only)";
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === "missing") return `token has no "${err.claim}" claim`;
    if (err.claim === "iss") return `token was not issued by ${ISSUER}`;
    if (err.claim === "aud") return `token is not for ${AUDIENCE}`;
    if (err.claim === "nbf") return "token is not valid yet";
    return `token "${err.claim}" claim is not valid`;
  }
  if (err instanceof errors.JOSEError) return "token is malformed";
  return "token could not be checked";
}
