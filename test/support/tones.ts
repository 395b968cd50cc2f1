// Tone measurement helpers for audio assertions (Goertzel with a Hann window).

type Samples = Int16Array | Float32Array;

/** Sample scale: Int16 samples are normalised to [-1, 1); Float32 are taken as is. */
function scaleOf(samples: Samples): number {
  return samples instanceof Int16Array ? 1 / 32768 : 1;
}

/**
 * Hann-windowed Goertzel power at `freqHz` over the whole of `samples`,
 * normalised so a full-scale sine at exactly `freqHz` gives ~1.0
 * (i.e. the squared peak amplitude of the sinusoid).
 */
export function goertzelPower(samples: Samples, sampleRate: number, freqHz: number): number {
  const n = samples.length;
  if (n < 2) return 0;
  const scale = scaleOf(samples);
  const w = (2 * Math.PI * freqHz) / sampleRate;
  const cw = Math.cos(w);
  const sw = Math.sin(w);
  const coeff = 2 * cw;
  let s1 = 0;
  let s2 = 0;
  let wsum = 0;
  const k = (2 * Math.PI) / (n - 1);
  for (let i = 0; i < n; i++) {
    const win = 0.5 - 0.5 * Math.cos(k * i);
    wsum += win;
    const s0 = samples[i]! * scale * win + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  // Complex DFT bin value at freqHz.
  const re = s1 - s2 * cw;
  const im = s2 * sw;
  // A sinusoid of amplitude A gives |X| ~= A * sum(win) / 2.
  const amp = (2 * Math.sqrt(re * re + im * im)) / wsum;
  return amp * amp;
}

/** Level of each frequency in dBFS (peak amplitude; full-scale sine ~ 0 dB). */
export function toneLevelsDb(samples: Samples, sampleRate: number, freqs: number[]): number[] {
  return freqs.map((f) => {
    const p = goertzelPower(samples, sampleRate, f);
    return 10 * Math.log10(Math.max(p, 1e-20));
  });
}

/** Little-endian signed 16-bit PCM bytes to samples (copies; any byte offset OK). */
export function s16leToInt16(buf: Buffer): Int16Array {
  const n = Math.floor(buf.length / 2);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = buf.readInt16LE(i * 2);
  return out;
}

const SR = 48000;
const WIN = 480; // 10 ms Goertzel window
const HOP = 48; // 1 ms

/** The q-quantile of xs (linear interpolation); NaN when empty. */
export function quantile(xs: number[], q: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

/** Tone amplitude envelope of 48 kHz audio: Hann-windowed Goertzel over 10 ms every 1 ms; value j is centred on sample j*48 + 240. */
export function toneEnvelope(pcm: Int16Array, hz: number): Float32Array {
  const n = Math.max(0, Math.floor((pcm.length - WIN) / HOP) + 1);
  const env = new Float32Array(n);
  for (let j = 0; j < n; j++) env[j] = Math.sqrt(goertzelPower(pcm.subarray(j * HOP, j * HOP + WIN), SR, hz));
  return env;
}

/**
 * Tone onsets (sample positions, sub-hop interpolated) where the envelope rises through half the
 * tone level after at least 100 ms below it. `level` defaults to the envelope's 90th percentile.
 */
export function toneOnsets(env: Float32Array, level = quantile(Array.from(env), 0.9)): number[] {
  const thr = level / 2;
  const quietHops = Math.round((0.1 * SR) / HOP);
  const out: number[] = [];
  let below = 0;
  for (let j = 1; j < env.length; j++) {
    if (env[j]! < thr) {
      below++;
      continue;
    }
    if (below >= quietHops && env[j - 1]! < thr) {
      const frac = (thr - env[j - 1]!) / (env[j]! - env[j - 1]!);
      out.push((j - 1 + frac) * HOP + WIN / 2);
    }
    below = 0;
  }
  return out;
}
