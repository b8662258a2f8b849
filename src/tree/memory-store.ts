/** A `TreeStore` in memory, for tests and for trees that need not survive the process (a fleet simulator). */
import type { TreeStore } from './types.ts'

export class MemoryStore implements TreeStore {
  private bytes: Uint8Array | undefined
  /** How many saves completed; lets tests see that a flush coalesced or skipped. */
  saves = 0

  constructor(initial?: Uint8Array) {
    this.bytes = initial?.slice()
  }

  load(): Promise<Uint8Array | undefined> {
    return Promise.resolve(this.bytes?.slice())
  }

  save(bytes: Uint8Array): Promise<void> {
    this.bytes = bytes.slice()
    this.saves++
    return Promise.resolve()
  }
}

/**
 * A store that keeps nothing, for trees whose only copy is the one in memory (an in-memory fleet: a restart,
 * the only reader of a store, never comes). A tree flushing to it does not even make the bytes.
 */
export class DiscardingStore implements TreeStore {
  readonly keepsNothing = true

  load(): Promise<Uint8Array | undefined> {
    return Promise.resolve(undefined)
  }

  save(): Promise<void> {
    return Promise.resolve()
  }
}
