/**
 * Exponential backoff with full jitter (a random delay between 0 and the exponential ceiling), so that many devices
 * that lost the same broker or server do not all come back in the same second. At the bottom: the MQTT binding's
 * reconnections and the sessions' resends of a message an HTTP server did not take (binding.md §10) use it.
 */

export interface BackoffOptions {
  baseMs: number
  capMs: number
  /** A number in [0, 1); `Math.random` unless a test injects its own. */
  random?: () => number
}

/** The delay before attempt number `attempt` (0 for the first retry), in whole milliseconds, at least 1. */
export function backoffDelay(attempt: number, options: BackoffOptions): number {
  const random = options.random ?? Math.random
  const ceiling = Math.min(options.capMs, options.baseMs * 2 ** Math.min(attempt, 52))
  return Math.max(1, Math.floor(random() * ceiling))
}

/** Counts failed attempts; `reset()` once a connection is fully up again. */
export function createBackoff(options: BackoffOptions): { next(): number; reset(): void } {
  let attempt = 0
  return {
    next: () => backoffDelay(attempt++, options),
    reset: () => {
      attempt = 0
    },
  }
}
