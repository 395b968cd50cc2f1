// Per-address bounds that hold before any authentication: how many signaling connections, joined
// participants and rooms one client address may hold at once. Loopback counts like any other
// address. Each grant returns its own release, called once when the resource ends.

/** Counts holders per key up to a cap; `take` returns the undo, or undefined when the key is at its cap. */
export class KeyedQuota {
  private readonly used = new Map<string, number>();

  constructor(private readonly cap: () => number) {}

  take(key: string): (() => void) | undefined {
    const n = this.used.get(key) ?? 0;
    if (n >= this.cap()) return undefined;
    this.used.set(key, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.used.get(key) ?? 1) - 1;
      if (left > 0) this.used.set(key, left);
      else this.used.delete(key);
    };
  }

  count(key: string): number {
    return this.used.get(key) ?? 0;
  }
}

/** The client address of a request or socket: IPv4-mapped IPv6 folded to IPv4, so one host is one key. */
export function clientAddress(remote: string | undefined): string {
  if (!remote) return "unknown";
  return remote.startsWith("::ffff:") ? remote.slice(7) : remote;
}

/** An IPv4 address as a number, or undefined. */
function ipv4(a: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(a);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  return parts.some((p) => p > 255) ? undefined : parts.reduce((x, p) => x * 256 + p, 0);
}

/** TRUSTED_PROXIES entries: exact addresses (IPv4 or IPv6) or IPv4 ranges (10.0.0.0/8). */
export function parseProxies(list: string[]): (address: string) => boolean {
  const exact = new Set<string>();
  const ranges: [number, number][] = [];
  for (const e of list) {
    const [base, bits] = e.split("/");
    if (bits === undefined) {
      exact.add(clientAddress(base));
      continue;
    }
    const n = ipv4(base ?? "");
    const b = Number(bits);
    if (n === undefined || !Number.isInteger(b) || b < 0 || b > 32) throw new Error(`not an address or IPv4 range: "${e}"`);
    const size = 2 ** (32 - b);
    ranges.push([Math.floor(n / size) * size, size]);
  }
  return (address) => {
    if (exact.has(address)) return true;
    const n = ipv4(address);
    return n !== undefined && ranges.some(([start, size]) => n >= start && n < start + size);
  };
}

/** The addresses a request passed through, as its proxies say (RFC 7239 Forwarded, else X-Forwarded-For), nearest last. */
function forwardedChain(headers: Record<string, string | string[] | undefined>): string[] {
  const join = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(",") : (v ?? ""));
  const fwd = join(headers.forwarded);
  if (fwd) {
    const out: string[] = [];
    for (const element of fwd.split(",")) {
      const m = /(?:^|;)\s*for=("?)\[?([^\]";,]+)\]?(?::\d+)?\1/i.exec(element);
      if (m) out.push(m[2]!.trim());
    }
    return out;
  }
  return join(headers["x-forwarded-for"]).split(",").map((s) => s.trim()).filter(Boolean);
}

/**
 * The client behind a request: the TCP peer, unless the peer is a trusted proxy (TRUSTED_PROXIES),
 * then the nearest address in the proxies' forwarding headers that is not itself a trusted proxy.
 * A header from anyone else is ignored, so a client cannot pick its own address.
 */
export function requestAddress(req: { socket: { remoteAddress?: string }; headers: Record<string, string | string[] | undefined> }, trusted: (address: string) => boolean): string {
  let address = clientAddress(req.socket.remoteAddress);
  if (!trusted(address)) return address;
  const chain = forwardedChain(req.headers).map((a) => clientAddress(a));
  for (let i = chain.length - 1; i >= 0; i--) {
    address = chain[i]!;
    if (!trusted(address)) return address;
  }
  return address;
}

/** A loopback address (127.0.0.0/8, ::1): the operator's own machine. */
export function isLoopback(address: string): boolean {
  return address === "::1" || /^127\./.test(address);
}

/** Runs at most `limit` tasks at once; up to `queueLimit` more wait, the rest are refused at once. */
export class Concurrency {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly limit: () => number,
    private readonly queueLimit: () => number,
  ) {}

  /** Runs `task` when a slot frees; resolves undefined without running it when the queue is full. */
  async run<T>(task: () => Promise<T>): Promise<{ value: T } | undefined> {
    if (this.running >= this.limit()) {
      if (this.waiting.length >= this.queueLimit()) return undefined;
      await new Promise<void>((r) => this.waiting.push(r));
    } else {
      this.running++;
    }
    try {
      return { value: await task() };
    } finally {
      const next = this.waiting.shift();
      if (next) next(); // the slot passes straight to the next waiter
      else this.running--;
    }
  }
}

/** A join refused by a cap or a rule: the code is what the client receives. */
export class AdmissionError extends Error {
  constructor(
    readonly code: "server_full" | "server_busy" | "too_many_joins" | "room_full" | "forbidden",
    message: string,
  ) {
    super(message);
  }
}
