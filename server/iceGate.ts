// The first look at every UDP datagram on a participant's ICE sockets, before werift parses it.
// An ICE port is reachable by anyone, so what a stranger sends must cost next to nothing and reach
// nothing: the first byte says what it claims to be (RFC 7983), and
//  - a STUN binding request passes only with our username fragment and a valid MESSAGE-INTEGRITY
//    (werift itself answers any username, unsigned, and learns the sender as a candidate);
//    answers are rate-limited per source address (STUN is an amplification tool);
//  - a STUN response passes only from an address we check (a remote candidate) or that has checked us;
//  - DTLS, RTP and RTCP pass only from an address that has proved it knows our ICE password;
//    RTP and RTCP only up to a datagram size, RTP only with a well-formed header, a bounded
//    header-extension block, and an SSRC and payload type the session negotiated (its header is
//    in the clear under SRTP, so this costs no decryption);
//  - anything else is dropped.
// Once ICE has selected its pair, the socket is connect()ed to the remote address: from then on
// the kernel itself drops datagrams from anyone else, so a spray at the port costs this process
// nothing. Every drop the gate sees is counted by reason (`mcu_udp_dropped_total`).
import { createHmac, timingSafeEqual } from "node:crypto";
import type { Socket, RemoteInfo } from "node:dgram";
import { metrics } from "../telemetry/metrics.ts";
import { logger } from "../telemetry/log.ts";
import { TokenBucket } from "./rateLimit.ts";

const log = logger("ice-gate");

export type DropReason = "over_bandwidth" | "datachannel_bandwidth" | "rtcp_rate" | "rtp_oversize" | "rtp_malformed" | "rtp_extension_size" | "rtp_unknown_ssrc" | "rtp_payload_type" | "not_webrtc" | "stun_malformed" | "stun_unknown_username" | "stun_bad_integrity" | "stun_rate" | "stun_unsolicited" | "dtls_from_stranger" | "rtp_from_stranger" | "after_select";

const MAGIC = 0x2112a442;
const ATTR_USERNAME = 0x0006;
const ATTR_INTEGRITY = 0x0008;

/** Where a valid USERNAME and MESSAGE-INTEGRITY sit in a STUN message, or why not. */
export function stunCredentials(data: Buffer): { username: string; integrityAt: number } | "stun_malformed" {
  if (data.length < 20 || data.readUInt32BE(4) !== MAGIC || (data.readUInt16BE(2) & 3) !== 0 || data.readUInt16BE(2) + 20 > data.length) return "stun_malformed";
  const end = 20 + data.readUInt16BE(2);
  let username: string | undefined;
  for (let off = 20; off + 4 <= end; ) {
    const type = data.readUInt16BE(off);
    const len = data.readUInt16BE(off + 2);
    if (off + 4 + len > end) return "stun_malformed";
    if (type === ATTR_USERNAME) username = data.toString("utf8", off + 4, off + 4 + len);
    if (type === ATTR_INTEGRITY) return username === undefined || len !== 20 ? "stun_malformed" : { username, integrityAt: off };
    off += 4 + ((len + 3) & ~3);
  }
  return "stun_malformed";
}

/** RFC 5389 §15.4: HMAC-SHA1 over the message up to MESSAGE-INTEGRITY, its length field covering that attribute. */
export function integrityValid(data: Buffer, integrityAt: number, password: string): boolean {
  const head = Buffer.from(data.subarray(0, 20));
  head.writeUInt16BE(integrityAt - 20 + 24, 2);
  const mac = createHmac("sha1", password).update(head).update(data.subarray(20, integrityAt)).digest();
  return timingSafeEqual(mac, data.subarray(integrityAt + 4, integrityAt + 24));
}

/** What the gate needs of werift's ICE connection (its `Connection`): credentials, candidates, the selected pair. */
interface IceConnection {
  localUsername: string;
  localPassword: string;
  remoteCandidates: { host: string; port: number }[];
  nominated?: { protocol: IceProtocol; remoteAddr: [string, number] };
  protocols: IceProtocol[];
  stateChanged: { subscribe(f: (state: string) => void): unknown };
}
interface IceProtocol {
  type?: string;
  transport?: { type?: string; close: () => Promise<unknown>; socket?: Socket; rinfo?: RemoteInfo; onData: (data: Buffer, addr: [string, number]) => void; send: (data: Buffer, addr?: [string, number]) => Promise<void> };
}

/**
 * Media bandwidth taken in from clients, bounded where it is cheapest: before werift decrypts a
 * packet. Each participant's proven peer gets `bytesPerSecond` (one second of burst), and all
 * participants from one signaling address together `share` times that; datagrams over either are
 * dropped (`over_bandwidth`). Far above what any camera and microphone send (DECODE_MAX_KBPS is
 * what gets decoded), so only a hostile sender meets it.
 */
export class IngressBudgets {
  private readonly addresses = new Map<string, { bucket: TokenBucket; users: number }>();
  constructor(private readonly bytesPerSecond: number, private readonly share: number) {}

  /** The buckets of one participant from `address`; release() when it leaves. */
  for(address: string): { take(bytes: number): boolean; release(): void } {
    let a = this.addresses.get(address);
    if (!a) this.addresses.set(address, (a = { bucket: new TokenBucket(this.bytesPerSecond * this.share, this.bytesPerSecond * this.share), users: 0 }));
    a.users++;
    const own = new TokenBucket(this.bytesPerSecond, this.bytesPerSecond);
    const shared = a;
    let released = false;
    return {
      take: (bytes) => own.take(bytes) && shared.bucket.take(bytes),
      release: () => {
        if (released) return;
        released = true;
        if (--shared.users === 0) this.addresses.delete(address);
      },
    };
  }
}

export interface IceGateOptions {
  /** Takes a proven datagram's bytes from its participant's and address's bandwidth (IngressBudgets). */
  ingress?: { take(bytes: number): boolean };
  /** RTCP packets per second taken from the proven peer (a second of burst): reports, NACKs, PLIs, REMB. */
  rtcpPerSecond?: number;
  /** DataChannel (DTLS application data) bytes per second taken from the proven peer (a second of burst). */
  dataBytesPerSecond?: number;
  /** STUN answers per second to one source address (and the burst). */
  stunPerSecond: number;
  stunBurst: number;
  /** Who owns the sockets, for the log. */
  participant: string;
  /** Largest RTP or RTCP datagram taken (a browser's are ≤ 1,250 bytes). */
  maxPacketBytes?: number;
  /** Largest RTP header-extension block (RFC 8285), bytes after its 4-byte header. */
  maxExtensionBytes?: number;
  /**
   * Whether werift routes this SSRC to one of our receivers and it negotiated this payload type
   * there; undefined until the session has both. Media with neither is dropped unread (SSRC churn,
   * payload types not negotiated).
   */
  routes?: (ssrc: number, payloadType: number) => "ssrc" | "payload_type" | undefined;
}

/** Source addresses that proved they know our ICE password; a few per connection (host, srflx, relay). */
const MAX_PROVEN = 16;
/** STUN rate buckets kept per socket: only proven senders get one, so this is a bound, not a cache. */
const MAX_RATE_KEYS = 32;
/** A socket of a connection that selected a pair elsewhere closes after this long without a datagram it let through. */
const IDLE_CLOSE_MS = 10_000;
/**
 * Datagrams from strangers (not a proven peer) a socket not yet connected reads per SHED_WINDOW_MS;
 * past that it stops reading until the window ends, and the kernel drops the rest unread. Reading a
 * datagram costs Node ~7 µs whatever the gate then does, so a spray at an open port cost CPU in
 * proportion to its rate; this bounds it at ~(budget + one socket buffer) per window per socket. A
 * browser's checks before it is proven are a few per second.
 */
export const STRANGER_BUDGET = 20;
export const SHED_WINDOW_MS = 100;

export class SocketGate {
  private readonly proven = new Set<string>();
  private readonly rtcp: TokenBucket | undefined;
  private readonly data: TokenBucket | undefined;
  private readonly rates = new Map<string, TokenBucket>();
  connectedTo: string | undefined;
  connecting = false;
  closed = false;
  /** performance.now() of the last datagram it let through. */
  lastAdmitted = 0;

  constructor(private readonly conn: Pick<IceConnection, "localUsername" | "localPassword" | "remoteCandidates">, private readonly o: IceGateOptions) {
    this.rtcp = o.rtcpPerSecond ? new TokenBucket(o.rtcpPerSecond, o.rtcpPerSecond) : undefined;
    this.data = o.dataBytesPerSecond ? new TokenBucket(o.dataBytesPerSecond, o.dataBytesPerSecond) : undefined;
  }

  /** Whether this datagram may go on to werift; counts and drops it otherwise. */
  admit(data: Buffer, from: RemoteInfo): boolean {
    const reason = this.judge(data, from);
    if (reason === undefined) return (this.lastAdmitted = performance.now()), true;
    metrics.udpDropped.inc({ reason });
    if (!this.connecting && !this.proven.has(`${from.address}:${from.port}`)) {
      this.strangers++;
      this.lastStrangerDrop = reason;
    }
    return false;
  }

  private strangers = 0;
  private windowStart = -Infinity;
  /** Why the last stranger's datagram was dropped (for the log). */
  lastStrangerDrop: DropReason | undefined;

  /**
   * Over the stranger budget in this window: the ms until it ends (the socket stops reading till
   * then), else undefined. Only sockets not (yet) connected to a selected pair count strangers.
   */
  shedFor(now: number): number | undefined {
    if (now - this.windowStart >= SHED_WINDOW_MS) {
      this.windowStart = now;
      this.strangers = 0;
      return undefined;
    }
    return this.strangers > STRANGER_BUDGET ? this.windowStart + SHED_WINDOW_MS - now : undefined;
  }

  private judge(data: Buffer, from: RemoteInfo): DropReason | undefined {
    const b = data.length ? data[0]! : 255;
    const key = `${from.address}:${from.port}`;
    if (b < 4) return this.judgeStun(data, from, key);
    if (b >= 20 && b <= 63) {
      if (!this.proven.has(key)) return "dtls_from_stranger";
      // DTLS application data (content type 23) is the DataChannels (SCTP, chat): a budget of its
      // own, far below media's (SCTP backs off from the loss); and all of DTLS comes out of media's.
      if (b === 23 && this.data && !this.data.take(data.length)) return "datachannel_bandwidth";
      return this.o.ingress && !this.o.ingress.take(data.length) ? "over_bandwidth" : undefined;
    }
    if (b >= 128 && b <= 191) {
      if (!this.proven.has(key)) return "rtp_from_stranger";
      // RTCP (RFC 5761: payload types 192-223 in the second byte) is counted by the packet too: a
      // flood of small reports costs werift a decryption and a parse each, whatever their bytes.
      if (this.o.maxPacketBytes && data.length > this.o.maxPacketBytes) return "rtp_oversize";
      const pt = data.length > 1 ? data[1]! : 0;
      if (pt >= 192 && pt <= 223) {
        if (this.rtcp && !this.rtcp.take()) return "rtcp_rate";
      } else {
        const bad = this.judgeRtp(data);
        if (bad) return bad;
      }
      return this.o.ingress && !this.o.ingress.take(data.length) ? "over_bandwidth" : undefined;
    }
    return "not_webrtc";
  }

  /** An RTP header as RFC 3550 / 8285 lay it out, within its bounds, on a stream the session has. */
  private judgeRtp(data: Buffer): DropReason | undefined {
    const len = data.length;
    const off = 12 + 4 * (data[0]! & 0x0f);
    if (off > len) return "rtp_malformed";
    if (data[0]! & 0x10) {
      if (off + 4 > len) return "rtp_malformed";
      const ext = data.readUInt16BE(off + 2) * 4;
      if (off + 4 + ext > len) return "rtp_malformed";
      if (this.o.maxExtensionBytes !== undefined && ext > this.o.maxExtensionBytes) return "rtp_extension_size";
    }
    const miss = this.o.routes?.(data.readUInt32BE(8), data[1]! & 0x7f);
    return miss === "ssrc" ? "rtp_unknown_ssrc" : miss === "payload_type" ? "rtp_payload_type" : undefined;
  }

  private judgeStun(data: Buffer, from: RemoteInfo, key: string): DropReason | undefined {
    if (data.length < 20 || data.readUInt32BE(4) !== MAGIC) return "stun_malformed";
    const cls = data.readUInt16BE(0) & 0x0110; // the class bits: 0 request, 0x10 indication, 0x100 success, 0x110 error
    if (cls & 0x0100) {
      // A response: only from where we send checks, or from a proven peer.
      if (this.proven.has(key) || this.conn.remoteCandidates.some((c) => c.port === from.port && c.host === from.address)) return undefined;
      return "stun_unsolicited";
    }
    if (cls === 0x0010) return this.proven.has(key) ? undefined : "stun_unsolicited"; // an indication (keepalive)
    const cred = stunCredentials(data);
    if (cred === "stun_malformed") return cred;
    if (!cred.username.startsWith(`${this.conn.localUsername}:`)) return "stun_unknown_username";
    if (!integrityValid(data, cred.integrityAt, this.conn.localPassword)) return "stun_bad_integrity";
    let rate = this.rates.get(from.address);
    if (!rate) {
      if (this.rates.size >= MAX_RATE_KEYS) return "stun_rate";
      this.rates.set(from.address, (rate = new TokenBucket(this.o.stunPerSecond, this.o.stunBurst)));
    }
    if (!rate.take()) return "stun_rate";
    if (!this.proven.has(key) && this.proven.size < MAX_PROVEN) this.proven.add(key);
    return undefined;
  }
}

/**
 * Puts the gate in front of every UDP socket of these ICE connections, those open now and those
 * gathered later, and connects each to its selected remote once ICE has one.
 */
export function guardIce(connections: IceConnection[], o: IceGateOptions): void {
  for (const conn of connections) {
    const gated = new WeakSet<IceProtocol>();
    const guard = (p: IceProtocol) => {
      if (gated.has(p)) return;
      gated.add(p);
      guardSocket(conn, p, o);
    };
    conn.protocols.forEach(guard);
    const push = conn.protocols.push.bind(conn.protocols);
    conn.protocols.push = (...items: IceProtocol[]) => {
      items.forEach(guard);
      return push(...items);
    };
    conn.stateChanged.subscribe((state) => {
      if (state === "connected" || state === "completed") selectPair(conn, o);
    });
  }
}

const gates = new WeakMap<IceProtocol, SocketGate>();

function guardSocket(conn: IceConnection, p: IceProtocol, o: IceGateOptions): void {
  const t = p.transport;
  const socket = t?.socket;
  if (!t || t.type !== "udp" || !socket) return; // TCP candidates are not gathered here (werift's default)
  const gate = new SocketGate(conn, o);
  gates.set(p, gate);
  // werift's own listener parses everything; ours decides first and hands on what passes.
  socket.removeAllListeners("message");
  socket.on("message", (data: Buffer, info: RemoteInfo) => {
    if (!gate.admit(data, info)) {
      const pause = gate.shedFor(performance.now());
      if (pause !== undefined) shed(socket, pause, o.participant, gate.lastStrangerDrop);
      return;
    }
    const address = info.family === "IPv6" ? info.address.split("%")[0]! : info.address;
    t.rinfo = info;
    try {
      t.onData(data, [address, info.port]);
    } catch (err) {
      log.debug("ice data error", { participant: o.participant, error: (err as Error).message });
    }
  });
  // A connected socket reports a vanished peer's ICMP "port unreachable" as an error: not a crash.
  socket.on("error", (err) => log.debug("ice socket error", { participant: o.participant, error: err.message }));
  const send = t.send;
  t.send = (data, addr) => {
    if (gate.connectedTo === undefined) return send(data, addr);
    // Connected: the kernel knows the address, and a send to any other would fail.
    if (addr && `${addr[0]}:${addr[1]}` !== gate.connectedTo) {
      metrics.udpDropped.inc({ reason: "after_select" });
      return Promise.resolve();
    }
    socket.send(data);
    return Promise.resolve();
  };
}

const stateSymbol = (s: Socket) => Object.getOwnPropertySymbols(s).find((x) => x.description === "state symbol");
let lastShedLog = -Infinity;

/**
 * Stops reading `socket` for `ms` (the kernel drops what comes meanwhile, unread): a socket over
 * its stranger budget. Node has no public pause for UDP; its handle's recvStop/recvStart are what
 * bind() and close() use.
 */
function shed(socket: Socket, ms: number, participant: string, reason: DropReason | undefined): void {
  const sym = stateSymbol(socket);
  const state = sym && (socket as unknown as Record<symbol, { handle?: { recvStop(): number; recvStart(): number } | null; receiving?: boolean }>)[sym];
  const handle = state?.handle;
  // Not bound yet, or closed (a closed handle must not be touched: Node aborts).
  if (!state || !handle || !state.receiving) return;
  handle.recvStop();
  metrics.udpShed.inc();
  const now = performance.now();
  if (now - lastShedLog > 10_000) {
    lastShedLog = now;
    log.warn("ICE socket flooded by strangers before its pair was selected: reading it in bursts", { participant, budget: STRANGER_BUDGET, windowMs: SHED_WINDOW_MS, reason });
  }
  setTimeout(() => {
    if (state.handle === handle && state.receiving) handle.recvStart(); // not if it closed meanwhile
  }, Math.max(1, Math.ceil(ms))).unref();
}

/**
 * ICE has selected its pair: that socket listens to the remote end alone, in the kernel. The
 * connection's other sockets (other interfaces, the other address family) stay behind the gate
 * while the other side may still use one of them (a controlling agent may send on a pair of its
 * own choosing), and close once they have carried nothing for IDLE_CLOSE_MS: consent checks every
 * few seconds keep any pair in use busy, so an idle one is dead, and a closed port costs nothing.
 */
function selectPair(conn: IceConnection, o: IceGateOptions): void {
  const pair = conn.nominated;
  const gate = pair && gates.get(pair.protocol);
  const socket = pair?.protocol.transport?.socket;
  if (!pair || !gate || !socket || gate.connecting) return;
  const [host, port] = pair.remoteAddr;
  gate.connecting = true;
  const selectedAt = performance.now();
  const sweep = setInterval(() => {
    const now = performance.now();
    if (now - selectedAt < IDLE_CLOSE_MS) return;
    let open = 0;
    for (const p of conn.protocols) {
      const g = gates.get(p);
      if (p === pair.protocol || !g || g.closed) continue;
      if (now - g.lastAdmitted < IDLE_CLOSE_MS) {
        open++;
        continue;
      }
      g.closed = true;
      void p.transport?.close().catch(() => {});
      metrics.udpSocketsClosedIdle.inc();
    }
    if (!open) clearInterval(sweep);
  }, IDLE_CLOSE_MS / 2);
  sweep.unref();
  conn.stateChanged.subscribe((state) => state === "closed" && clearInterval(sweep));
  try {
    // Until the callback, sends still carry the address (Node refuses them once connected).
    socket.connect(port, host, () => {
      gate.connectedTo = `${host}:${port}`;
      metrics.udpSocketsConnected.inc();
    });
  } catch (err) {
    log.warn("could not connect the selected ICE socket; it stays filtered by the gate", { participant: o.participant, error: (err as Error).message });
  }
}
