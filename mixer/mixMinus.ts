// Mix-minus arithmetic: one int32 sum per tick, each listener gets the sum minus its own input.

export function clip16(v: number): number {
  return v > 32767 ? 32767 : v < -32768 ? -32768 : v;
}

/** Adds every input into `sum` (int32, cleared first). Missing inputs count as silence. */
export function sumInputs(inputs: readonly (Int16Array | undefined)[], sum: Int32Array): void {
  sum.fill(0);
  for (const input of inputs) {
    if (!input) continue;
    const n = Math.min(input.length, sum.length);
    for (let i = 0; i < n; i++) sum[i] += input[i];
  }
}

/** Writes clip(sum - own) into `out`: what a listener hears (everyone but themselves). */
export function mixMinus(sum: Int32Array, own: Int16Array | undefined, out: Int16Array): void {
  if (!own) {
    fullMix(sum, out);
    return;
  }
  for (let i = 0; i < out.length; i++) out[i] = clip16(sum[i] - (own[i] ?? 0));
}

/** Writes clip(sum) into `out`: everyone, for recording or for listeners who sent nothing. */
export function fullMix(sum: Int32Array, out: Int16Array): void {
  for (let i = 0; i < out.length; i++) out[i] = clip16(sum[i]);
}

/** RMS level of a block in dBFS (-Infinity for digital silence): the talk detector's input. */
export function blockLevelDb(block: Int16Array): number {
  let acc = 0;
  for (let i = 0; i < block.length; i++) acc += block[i] * block[i];
  return acc === 0 ? -Infinity : 10 * Math.log10(acc / block.length / (32768 * 32768));
}
