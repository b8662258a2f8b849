/**
 * Throttling of bootstrap MAC failures, per SEC method (binding.md §6): a `USERPIN` must not fall to a brute
 * force on the bootstrap topic. The first `freeFailures` in a row cost nothing (a bootstrap server's own
 * mistake); each later one starts a backoff, twice as long as the one before up to `maxBackoffMs`, during which
 * every bootstrap of that method is refused without its MAC being checked: checking it would let the guessing
 * go on at full speed, the right guess only refused later. A MAC that verifies ends the count.
 *
 * With the defaults, 10,000 guesses take the device over 100 days (a 6-digit PIN, 10^6 keys, over 28 years).
 * The count lives in memory: a restart begins afresh, which a party on the broker cannot bring about.
 */
import type { BootstrapSecMethod } from '../auth/bootstrap-mac.ts'
import { QuietLog } from '../rate-limit.ts'

export interface BootstrapThrottleSettings {
  /** MAC failures in a row that start no backoff. */
  freeFailures: number
  /** The backoff the first failure past them starts; each further one doubles it. */
  firstBackoffMs: number
  maxBackoffMs: number
}

export const BOOTSTRAP_THROTTLE: Readonly<BootstrapThrottleSettings> = Object.freeze({
  freeFailures: 3,
  firstBackoffMs: 30_000,
  maxBackoffMs: 15 * 60_000,
})

/** Whether a bootstrap's MAC may be checked now, and how many of its method were refused unchecked before it. */
export type Admission = { ok: true; throttled: number } | { ok: false; retryInMs: number }

interface MethodState {
  failures: number
  /** Until when (clock ms) bootstraps of the method are refused unchecked. */
  until: number
  /** Bootstraps refused unchecked since the last one admitted. */
  refused: number
}

/** Lines of refusals that no MAC check throttles: one a second per reason, with the count of the rest. */
const QUIET_LOG_MS = 1000
const QUIET_LOG_KEYS = 32

export class BootstrapThrottle {
  readonly #now: () => number
  readonly #settings: Readonly<BootstrapThrottleSettings>
  readonly #methods = new Map<BootstrapSecMethod, MethodState>()
  readonly #quiet = new QuietLog(QUIET_LOG_MS, QUIET_LOG_KEYS)

  constructor(now: () => number, settings: Readonly<BootstrapThrottleSettings> = BOOTSTRAP_THROTTLE) {
    this.#now = now
    this.#settings = settings
  }

  /** Before a MAC is checked: refused (and counted) during a backoff of its method. */
  admit(method: BootstrapSecMethod): Admission {
    const state = this.#methods.get(method)
    if (state === undefined) return { ok: true, throttled: 0 }
    const now = this.#now()
    if (now < state.until) {
      state.refused++
      return { ok: false, retryInMs: state.until - now }
    }
    const throttled = state.refused
    state.refused = 0
    return { ok: true, throttled }
  }

  /** A MAC of `method` did not verify: the failures in a row, and the backoff this one starts (0 for none). */
  failed(method: BootstrapSecMethod): { failures: number; backoffMs: number } {
    let state = this.#methods.get(method)
    if (state === undefined) this.#methods.set(method, (state = { failures: 0, until: 0, refused: 0 }))
    state.failures++
    const past = state.failures - this.#settings.freeFailures
    const backoffMs = past <= 0 ? 0 : Math.min(this.#settings.maxBackoffMs, this.#settings.firstBackoffMs * 2 ** (past - 1))
    state.until = this.#now() + backoffMs
    return { failures: state.failures, backoffMs }
  }

  /** A MAC of `method` verified: whoever sent it holds the secret, and the count starts over. */
  succeeded(method: BootstrapSecMethod): void {
    this.#methods.delete(method)
  }

  /**
   * The line of a refusal that comes before any MAC check (no SEC, no MAC, a method without its secret, a PIN too
   * short): anyone on the broker can repeat it as fast as it likes (binding.md §11), so `write` runs at most once a
   * second per `reason`, given the count of those left out.
   */
  quietly(reason: string, write: (suppressed: number) => void): void {
    this.#quiet.note(reason, this.#now(), write)
  }
}
