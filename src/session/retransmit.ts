import { backoffDelay } from '../backoff.ts'
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
 *
 * The wait starts once the message is handed over (or could not be): a message the transport holds while its
 * broker is away has not left, so the time it waits there does not count, and it is not sent again the moment
 * it finally goes out.
 */
export class Retransmitter {
  readonly #clock: Clock
  readonly #timeoutMs: number
  readonly #maxResends: number
  readonly #onTimeout: (action: TimeoutAction) => void
  #timer: unknown
  #resends = 0
  #closing = false
  /** A message of ours is on its way to the transport and its wait has not started yet. */
  #handingOver = false
  /** The next wait is this one instead of the session timeout (`hurry`). */
  #soonMs: number | undefined

  /** The ceiling of the first wait after a lost message (`lost`), doubled for each resend. */
  readonly #lostBaseMs: number

  constructor(clock: Clock, timeoutMs: number, maxResends: number, onTimeout: (action: TimeoutAction) => void, lostBaseMs = 1000) {
    this.#clock = clock
    this.#timeoutMs = timeoutMs
    this.#maxResends = maxResends
    this.#onTimeout = onTimeout
    this.#lostBaseMs = lostBaseMs
  }

  /** A new message is on its way: its own count of resends starts, its wait once it is handed over. */
  sent(closing: boolean): void {
    this.#resends = 0
    this.#closing = closing
    this.#soonMs = undefined
    this.#disarm()
    this.#handingOver = true
  }

  /** The message (or its resend) is handed over, or could not be: the wait for an answer starts now. */
  handedOver(): void {
    this.#handingOver = false
    this.#arm()
  }

  /** The message was sent again after a timeout: wait once more. */
  resent(): void {
    this.handedOver()
  }

  /**
   * The next wait for an answer to our last message is at most `ms` (the transport has just reconnected, and the
   * message or its answer may have been lost meanwhile). Nothing changes for a message that expects no answer.
   */
  hurry(ms: number): void {
    if (this.#closing || (this.#timer === undefined && !this.#handingOver)) return
    this.#soonMs = Math.min(ms, this.#timeoutMs)
    if (this.#timer !== undefined) this.#arm()
  }

  /**
   * The binding knows the message did not reach the party (binding.md §10: a connection error, a timeout or a 5xx
   * answer of an HTTP server): it goes again after a backoff with jitter, not after the whole session timeout,
   * and counts as a resend like one that got no answer.
   */
  lost(): void {
    if (this.#closing) return
    this.#soonMs = Math.min(this.#timeoutMs, backoffDelay(this.#resends, { baseMs: this.#lostBaseMs, capMs: this.#timeoutMs }))
    if (this.#timer !== undefined) this.#arm()
  }

  /** The party answered (or the session ended). */
  cancel(): void {
    this.#disarm()
    this.#closing = false
    this.#handingOver = false
    this.#soonMs = undefined
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
    const delay = this.#soonMs ?? this.#timeoutMs
    this.#soonMs = undefined
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined
      if (this.#closing) return this.#onTimeout('close')
      if (this.#resends >= this.#maxResends) return this.#onTimeout('give-up')
      this.#resends += 1
      // Sent again next: a hurry meanwhile applies to the wait after that.
      this.#handingOver = true
      this.#onTimeout('resend')
    }, delay)
  }
}
