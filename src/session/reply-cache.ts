import { createHash } from 'node:crypto'
import type { OutboundMessage } from './port.ts'

/** A duplicate of an answered message is answered again at most this many times (binding.md §11). */
export const MAX_ANSWERS_AGAIN = 3

/**
 * The last inbound message a session admitted and our answer to it (binding.md §3): a duplicate delivery, the
 * same bytes again, is answered again from it, never run twice, and at most `MAX_ANSWERS_AGAIN` times, so that a
 * replayed message cannot make the device send more than it received many times over (§11). Only a digest of
 * the message is kept: an ended session is remembered for minutes.
 */
export class ReplyCache {
  #msgId: number | undefined
  #digest: string | undefined
  #reply: OutboundMessage | undefined
  #answeredAgain = 0

  /** The MsgID of the last inbound message admitted. */
  get lastMsgId(): number | undefined {
    return this.#msgId
  }

  /** A new inbound message was admitted; its answer comes with `answered`. */
  admitted(msgId: number, payload: Uint8Array): void {
    this.#msgId = msgId
    this.#digest = digestOf(payload)
    this.#reply = undefined
    this.#answeredAgain = 0
  }

  answered(reply: OutboundMessage): void {
    this.#reply = reply
  }

  /**
   * For a message that repeats the last one admitted: our answer to send again, or `exhausted` once it was sent
   * again often enough; undefined for any other message. A repeat always answers nothing new.
   */
  repeat(msgId: number, payload: Uint8Array): OutboundMessage | 'exhausted' | undefined {
    if (msgId !== this.#msgId || digestOf(payload) !== this.#digest) return undefined
    if (this.#reply === undefined || this.#answeredAgain >= MAX_ANSWERS_AGAIN) return 'exhausted'
    this.#answeredAgain += 1
    return this.#reply
  }
}

function digestOf(payload: Uint8Array): string {
  return createHash('sha256').update(payload).digest('base64')
}
