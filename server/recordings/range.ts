// HTTP Range for downloads (RFC 9110 §14): one byte range, as players and download tools ask.

export type RangeResult =
  | { kind: "all" }
  | { kind: "range"; start: number; end: number }
  | { kind: "bad"; message: string };

/** Parses a Range header against a file of `size` bytes. `end` is inclusive. */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined || header === "") return { kind: "all" };
  const m = /^bytes=([^,]*)$/.exec(header.trim());
  if (!m) {
    if (/^bytes=.*,/.test(header.trim())) return { kind: "bad", message: "only one byte range per request is supported" };
    return { kind: "bad", message: `Range must look like "bytes=0-1023", got "${header.slice(0, 60)}"` };
  }
  const spec = /^\s*(\d*)-(\d*)\s*$/.exec(m[1]!);
  if (!spec || (spec[1] === "" && spec[2] === "")) return { kind: "bad", message: `malformed byte range "${m[1]!.slice(0, 40)}"` };
  const [, a, b] = spec as unknown as [string, string, string];
  if (a === "") {
    // Suffix range: the last b bytes.
    const n = Number(b);
    if (n === 0 || size === 0) return { kind: "bad", message: "empty suffix range" };
    return { kind: "range", start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const end = b === "" ? size - 1 : Math.min(Number(b), size - 1);
  if (b !== "" && Number(b) < start) return { kind: "bad", message: `range end ${b} is before its start ${a}` };
  if (start >= size) return { kind: "bad", message: `range starts at ${start}, past the end of a ${size}-byte file` };
  return { kind: "range", start, end };
}
