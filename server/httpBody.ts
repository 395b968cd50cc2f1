// Request bodies read with a bound: what a client sends is never kept past the limit (shared by
// long polling and the REST routes).
import type { IncomingMessage } from "node:http";

/** Reads at most `limit` bytes; beyond that it stops keeping data and answers "too_large". */
export function readBody(req: IncomingMessage, limit: number): Promise<string | "too_large" | "aborted"> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (v: string | "too_large" | "aborted") => {
      req.off("data", onData).off("end", onEnd).off("error", onAbort).off("close", onClose);
      resolve(v);
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size <= limit) return void chunks.push(c);
      chunks.length = 0;
      req.on("data", () => {}); // discard the rest until the socket closes (the answer says Connection: close)
      finish("too_large");
    };
    const onEnd = () => finish(Buffer.concat(chunks).toString());
    const onAbort = () => finish("aborted");
    const onClose = () => !req.complete && finish("aborted");
    req.on("data", onData).on("end", onEnd).on("error", onAbort).on("close", onClose);
  });
}

