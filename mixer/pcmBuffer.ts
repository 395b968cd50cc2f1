// A per-input jitter buffer of decoded 48 kHz mono PCM: it prefills a little before playing,
// sheds depth it turned out not to need (bursts at start, clock drift), caps its depth so latency
// cannot grow without bound, and reports underruns.

export class PcmBuffer {
  private chunks: Int16Array[] = [];
  private head = 0; // read offset into chunks[0]
  private buffered = 0;
  private playing = false;
  private oddByte: number | undefined;
  underruns = 0;
  dropped = 0;
  /** Smallest depth left after a take over the current window: what was never needed. */
  private minLeft = Infinity;
  private takes = 0;

  constructor(
    private readonly prefillSamples = 1920,
    private readonly maxSamples = 9600,
    /** Depth kept as a margin against arrival jitter when shedding. */
    private readonly marginSamples = 480,
    /** Takes per shedding window (50 = 1 s of 20 ms blocks). */
    private readonly window = 50,
  ) {}

  get length(): number {
    return this.buffered;
  }

  /** Appends raw s16le bytes from a pipe (chunks may split a sample). */
  pushBytes(buf: Buffer): void {
    let bytes = buf;
    if (this.oddByte !== undefined) {
      bytes = Buffer.concat([Buffer.from([this.oddByte]), buf]);
      this.oddByte = undefined;
    }
    if (bytes.length % 2) {
      this.oddByte = bytes[bytes.length - 1];
      bytes = bytes.subarray(0, bytes.length - 1);
    }
    if (!bytes.length) return;
    // One memcpy into an aligned array (s16le matches the host order on x86 and ARM).
    const samples = new Int16Array(bytes.length / 2);
    Buffer.from(samples.buffer).set(bytes);
    this.push(samples);
  }

  push(samples: Int16Array): void {
    this.chunks.push(samples);
    this.buffered += samples.length;
    // Too deep (a burst, or a clock faster than ours): drop the oldest audio to keep latency bounded.
    if (this.buffered > this.maxSamples) this.dropped += this.skip(this.buffered - this.prefillSamples);
  }

  private skip(n: number): number {
    let left = n;
    while (left > 0 && this.chunks.length) {
      const avail = this.chunks[0].length - this.head;
      const k = Math.min(avail, left);
      this.head += k;
      left -= k;
      if (this.head === this.chunks[0].length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    this.buffered -= n - left;
    return n - left;
  }

  /** Fills `out` with the next samples; returns false (out untouched) while prefilling or empty. */
  take(out: Int16Array): boolean {
    if (!this.playing) {
      if (this.buffered < this.prefillSamples) return false;
      this.playing = true;
    }
    if (this.buffered < out.length) {
      this.underruns++;
      this.playing = false;
      return false;
    }
    let pos = 0;
    while (pos < out.length) {
      const c = this.chunks[0];
      const k = Math.min(c.length - this.head, out.length - pos);
      out.set(c.subarray(this.head, this.head + k), pos);
      pos += k;
      this.head += k;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    this.buffered -= out.length;
    this.shed();
    return true;
  }

  /** Discards n samples (ticks the mixer skipped while the event loop stalled). */
  discard(n: number): void {
    this.dropped += this.skip(Math.min(n, this.buffered));
  }

  /** Once per window: if the buffer never ran below margin + k samples, k samples were pure delay. */
  private shed(): void {
    this.minLeft = Math.min(this.minLeft, this.buffered);
    if (++this.takes < this.window) return;
    const excess = this.minLeft - this.marginSamples;
    if (excess > 0) this.dropped += this.skip(excess);
    this.takes = 0;
    this.minLeft = Infinity;
  }
}
