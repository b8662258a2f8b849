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

  set(key: K, value: V): void {
    const map = (this.#map ??= new Map())
    map.delete(key)
    map.set(key, value)
    while (map.size > this.#max) {
      const oldest = map.keys().next().value as K
      map.delete(oldest)
    }
  }

  delete(key: K): void {
    this.#map?.delete(key)
  }

  get size(): number {
    return this.#map?.size ?? 0
  }
}

/**
 * A token bucket per party: `perSecond` tokens refill each second, at most `burst` are held. Used for the
 * answers to failed authentication (binding.md §6: a few per second per party; the rest dropped and logged).
 */
export class PartyRateLimiter {
  /** Made on the first answer limited (see BoundedMap). */
  #buckets: BoundedMap<string, { tokens: number; at: number }> | undefined
  readonly #perSecond: number
  readonly #burst: number
  readonly #maxParties: number

  constructor(perSecond: number, burst: number, maxParties: number) {
    this.#perSecond = perSecond
    this.#burst = burst
    this.#maxParties = maxParties
  }

  /** Takes one token for the party at time `now` (ms); false when its bucket is empty. */
  take(party: string, now: number): boolean {
    const buckets = (this.#buckets ??= new BoundedMap(this.#maxParties))
    const bucket = buckets.get(party) ?? { tokens: this.#burst, at: now }
    const refill = (Math.max(0, now - bucket.at) / 1000) * this.#perSecond
    bucket.tokens = Math.min(this.#burst, bucket.tokens + refill)
    bucket.at = now
    const allowed = bucket.tokens >= 1
    if (allowed) bucket.tokens -= 1
    buckets.set(party, bucket)
    return allowed
  }
}

/** At most one event per key in each interval (nonce rotation on failures, repeated log lines). */
export class PartyInterval {
  /** Made on the first event (see BoundedMap). */
  #last: BoundedMap<string, number> | undefined
  readonly #intervalMs: number
  readonly #maxParties: number

  constructor(intervalMs: number, maxParties: number) {
    this.#intervalMs = intervalMs
    this.#maxParties = maxParties
  }

  /** True (and records `now`) when the key's last event is at least the interval ago, or there was none. */
  allow(key: string, now: number): boolean {
    const last = this.#last?.get(key)
    if (last !== undefined && now - last < this.#intervalMs) return false
    ;(this.#last ??= new BoundedMap(this.#maxParties)).set(key, now)
    return true
  }
}
