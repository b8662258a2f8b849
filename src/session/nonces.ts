import { deriveNonce } from '../auth/nonce.ts'
import type { AgentState } from './agent-state.ts'

/**
 * Fresh nonces for `Chal`/`NextNonce` (binding.md §6): no nonce is ever handed out twice, and a crash never
 * brings an older one back. Each nonce is derived from the device key and a counter; the counter range is
 * reserved ahead and persisted in the agent state before any value of it is used, and a restore starts at the
 * end of the persisted reservation. So a disk write is needed only once per `block` nonces, and a crash at
 * any point merely skips the unused rest of a block.
 */
export class NonceIssuer {
  readonly #state: AgentState
  readonly #block: bigint
  #next: bigint
  /** Counters below this are durably reserved. */
  #usableUntil: bigint
  #reserving: Promise<void> | undefined

  constructor(state: AgentState, options: { block: number }) {
    this.#state = state
    this.#block = BigInt(Math.max(1, Math.floor(options.block)))
    this.#next = state.nonceReservedUntil
    this.#usableUntil = this.#next
  }

  /** A nonce never issued before; waits for a disk write only when the reserved block is used up. */
  async issue(): Promise<Uint8Array> {
    while (this.#next >= this.#usableUntil) await this.#reserve()
    const counter = this.#next
    this.#next += 1n
    return deriveNonce(this.#state.deviceKey, counter)
  }

  #reserve(): Promise<void> {
    if (this.#reserving) return this.#reserving
    const until = this.#next + this.#block
    this.#state.nonceReservedUntil = until
    const reserving = this.#state.save().then(
      () => {
        this.#usableUntil = until
        this.#reserving = undefined
      },
      (error: unknown) => {
        this.#reserving = undefined
        throw error
      },
    )
    this.#reserving = reserving
    return reserving
  }
}
