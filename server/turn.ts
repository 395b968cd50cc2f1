// ICE servers handed to a client in `joined`: configured STUN/TURN, with TURN credentials minted
// per participant by the TURN REST convention that coturn's `use-auth-secret` checks:
// username = "<expiry unix seconds>:<participant id>", credential = base64(HMAC-SHA1(secret, username)).
import { createHmac } from "node:crypto";

export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

export interface TurnSettings {
  iceServers: IceServer[];
  stunUrls: string[];
  turnUrls: string[];
  turnSecret: string | undefined;
  turnTtlS: number;
}

export function turnCredential(secret: string, participantId: string, ttlS: number, nowMs = Date.now()): { username: string; credential: string } {
  const expiry = Math.floor(nowMs / 1000) + ttlS;
  const username = `${expiry}:${participantId}`;
  const credential = createHmac("sha1", secret).update(username).digest("base64");
  return { username, credential };
}

export function iceServersFor(participantId: string, s: TurnSettings, nowMs = Date.now()): IceServer[] {
  const out: IceServer[] = [...s.iceServers];
  if (s.stunUrls.length) out.push({ urls: s.stunUrls });
  if (s.turnUrls.length && s.turnSecret) out.push({ urls: s.turnUrls, ...turnCredential(s.turnSecret, participantId, s.turnTtlS, nowMs) });
  return out;
}
