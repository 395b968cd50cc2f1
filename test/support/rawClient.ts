// A bare signaling client for tests, optionally from another loopback address (127.0.0.x is one
// host each, so per-address limits apply to it as to a separate machine).
import WebSocket from "ws";
import { waitFor } from "./call.ts";

export class RawClient {
  readonly ws: WebSocket;
  readonly inbox: any[] = [];
  closeCode: number | undefined;
  constructor(url: string, localAddress?: string) {
    this.ws = new WebSocket(url.replace(/^http/, "ws") + "/ws", { localAddress });
    this.ws.on("message", (d) => this.inbox.push(JSON.parse(d.toString())));
    this.ws.on("close", (code) => (this.closeCode = code));
    this.ws.on("error", () => {});
  }
  async open(): Promise<this> {
    if (this.ws.readyState !== WebSocket.OPEN) {
      await new Promise<void>((res, rej) => {
        this.ws.once("open", () => res());
        this.ws.once("unexpected-response", (_req, r) => rej(new Error(`HTTP ${r.statusCode}`)));
        this.ws.once("error", rej);
      });
    }
    return this;
  }
  /** Sends a message and returns the next reply of one of `types` (default: any). */
  async ask(msg: unknown, types?: string[]): Promise<any> {
    const n = this.inbox.length;
    this.ws.send(JSON.stringify(msg));
    return waitFor("a reply", () => this.inbox.slice(n).find((m) => !types || types.includes(m.type)), 5000);
  }
  close(): void {
    this.ws.close();
  }
}

