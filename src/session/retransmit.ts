import type { Clock } from './engine.ts'

/**
 * What to do when the party has not answered within the session timeout: send our last message again, give
 * up (the session fails), or close (our last message held nothing but Status and expected no answer).
 */
export type TimeoutAction = 'resend' | 'give-up' | 'close'

/**
 * The timer on the last message we sent (binding.md §3): with no answer within the session timeout it is sent
 * again, same MsgID, a bounded number of times, then the session fails. A message holding nothing but Status
 * expects no answer: its timer only closes the session.
 */
export class Retransmitter {
  readonly #clock: Clock
  readonly #timeoutMs: number
  readonly #maxResends: number
  readonly #onTimeout: (action: TimeoutAction) => void
  #timer: unknown
  #resends = 0
  #closing = false

  constructor(clock: Clock, timeoutMs: number, maxResends: number, onTimeout: (action: TimeoutAction) => void) {
    this.#clock = clock
    this.#timeoutMs = timeoutMs
    this.#maxResends = maxResends
    this.#onTimeout = onTimeout
  }

  /** A new message went out: its own count of resends starts. */
  sent(closing: boolean): void {
    this.#resends = 0
    this.#closing = closing
    this.#arm()
  }

  /** The message was sent again after a timeout: wait once more. */
  resent(): void {
    this.#arm()
  }

  /** The party answered (or the session ended). */
  cancel(): void {
    this.#disarm()
    this.#closing = false
  }

  get closing(): boolean {
    return this.#closing
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #arm(): void {
    this.#disarm()
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined
      if (this.#closing) return this.#onTimeout('close')
      if (this.#resends >= this.#maxResends) return this.#onTimeout('give-up')
      this.#resends += 1
      this.#onTimeout('resend')
    }, this.#timeoutMs)
  }
}
