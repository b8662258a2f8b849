/**
 * Small bounded bookkeeping per party: a flood of messages naming ever new parties must not grow memory, so
 * every per-party map here forgets the least recently used entry past its bound.
 */
export class BoundedMap<K, V> {
  /** Made on the first `set`: most of a fleet's devices never meet a party worth tracking. */
  #map: Map<K, V> | undefined
  readonly #max: number

  constructor(max: number) {
    this.#max = Math.max(1, max)
  }

  get(key: K): V | undefined {
    const map = this.#map
    const value = map?.get(key)
    if (value !== undefined) {
      // Map keeps insertion order: re-inserting marks the entry as the most recently used.
      map!.delete(key)
      map!.set(key, value)
    }
    return value
  }

  delete(key: K): void {
    this.#map?.delete(key)
  }

  set(key: K, value: V): void {
    const map = (this.#map ??= new Map())
    map.delete(key)
    map.set(key, value)
    while (map.size > this.#max) {
      const oldest = map.keys().next().value as K
      map.delete(oldest)
    }
  }
}

/**
 * A token bucket per party: `perSecond` tokens refill each second, at most `burst` are held. Used for the
 * answers to failed authentication (binding.md §6: a few per second per party; the rest dropped and logged).
 */
export class PartyRateLimiter extends BoundedMap<string, { tokens: number; at: number }> {
  readonly #perSecond: number
  readonly #burst: number

  constructor(perSecond: number, burst: number, maxParties: number) {
    super(maxParties)
    this.#perSecond = perSecond
    this.#burst = burst
  }

  /** Takes one token for the party at time `now` (ms); false when its bucket is empty. */
  take(party: string, now: number): boolean {
    const bucket = this.get(party) ?? { tokens: this.#burst, at: now }
    const refill = (Math.max(0, now - bucket.at) / 1000) * this.#perSecond
    bucket.tokens = Math.min(this.#burst, bucket.tokens + refill)
    bucket.at = now
    const allowed = bucket.tokens >= 1
    if (allowed) bucket.tokens -= 1
    this.set(party, bucket)
    return allowed
  }
}

/** At most one event per key in each interval (nonce rotation on failures, repeated log lines): key → last event. */
export class PartyInterval extends BoundedMap<string, number> {
  readonly #intervalMs: number

  constructor(intervalMs: number, maxParties: number) {
    super(maxParties)
    this.#intervalMs = intervalMs
  }

  /** True (and records `now`) when the key's last event is at least the interval ago, or there was none. */
  allow(key: string, now: number): boolean {
    const last = this.get(key)
    if (last !== undefined && now - last < this.#intervalMs) return false
    this.set(key, now)
    return true
  }
}

/**
 * Warnings a flood can trigger, logged at most once an interval per key, each line saying how many like it were
 * left out since the last (binding.md §6: "the log lines themselves rate-limited").
 */
export class QuietLog extends BoundedMap<string, { at: number; suppressed: number }> {
  readonly #intervalMs: number

  constructor(intervalMs: number, maxKeys: number) {
    super(maxKeys)
    this.#intervalMs = intervalMs
  }

  /**
   * Runs `write` with the count left out before it when the key's last line is at least the interval ago;
   * otherwise counts this one as left out.
   */
  note(key: string, now: number, write: (suppressed: number) => void): void {
    const last = this.get(key)
    if (last !== undefined && now - last.at < this.#intervalMs) {
      last.suppressed += 1
      return
    }
    this.set(key, { at: now, suppressed: 0 })
    write(last?.suppressed ?? 0)
  }
}
