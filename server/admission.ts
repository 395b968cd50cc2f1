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
