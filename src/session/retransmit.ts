import type { OutboundMessage } from '../transport/port.ts'
import type { Clock } from './engine.ts'

/** What to do when the party has not answered within the session timeout. */
export type TimeoutAction = { kind: 'resend'; message: OutboundMessage } | { kind: 'give-up' } | { kind: 'close' }

/**
 * The last message we sent and its timer (binding.md §3): with no answer within the session timeout it is sent
 * again, same MsgID, a bounded number of times, then the session fails. A message holding nothing but Status
 * expects no answer: its timer only closes the session.
 */
export class Retransmitter {
  #timer: unknown
  #resends = 0
  #closing = false
  #message: OutboundMessage | undefined

  constructor(
    private readonly clock: Clock,
    private readonly timeoutMs: number,
    private readonly maxResends: number,
    private readonly onTimeout: (action: TimeoutAction) => void,
  ) {}

  /** A new message went out: its own count of resends starts. */
  sent(message: OutboundMessage, closing: boolean): void {
    this.#message = message
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
    if (this.#timer !== undefined) this.clock.clearTimeout(this.#timer)
    this.#timer = undefined
    this.#closing = false
  }

  get closing(): boolean {
    return this.#closing
  }

  #arm(): void {
    if (this.#timer !== undefined) this.clock.clearTimeout(this.#timer)
    this.#timer = this.clock.setTimeout(() => {
      this.#timer = undefined
      if (this.#closing) return this.onTimeout({ kind: 'close' })
      if (this.#message === undefined || this.#resends >= this.maxResends) return this.onTimeout({ kind: 'give-up' })
      this.#resends += 1
      this.onTimeout({ kind: 'resend', message: this.#message })
    }, this.timeoutMs)
  }
}
