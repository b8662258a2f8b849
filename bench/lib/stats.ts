/** Median, min and max of repeated measurements (after a warm-up that is not kept). */
export interface Summary {
  median: number
  min: number
  max: number
  runs: number
}

export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) return { median: NaN, min: NaN, max: NaN, runs: 0 }
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, runs: sorted.length }
}

/** Runs `measure` `warmup` times unrecorded, then `runs` times; returns the recorded values. */
export async function repeat(runs: number, warmup: number, measure: (run: number) => Promise<number>): Promise<number[]> {
  for (let k = 0; k < warmup; k++) await measure(-1 - k)
  const values: number[] = []
  for (let k = 0; k < runs; k++) values.push(await measure(k))
  return values
}

/** A sample, bounded in time: calls `once` until `durationMs` has passed, returns how many per second. */
export async function ratePerSecond(durationMs: number, once: () => Promise<unknown> | unknown): Promise<number> {
  const start = performance.now()
  let count = 0
  while (performance.now() - start < durationMs) {
    const result = once()
    if (result instanceof Promise) await result
    count++
  }
  return (count * 1000) / (performance.now() - start)
}
