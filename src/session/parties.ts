import type { SyncMLMessage } from '../codec/syncml-model.ts'
import type { InboundMessage } from './port.ts'
import type { SessionConstants } from './constants.ts'
import type { Clock } from './engine.ts'
import type { EndedSession, Session } from './session.ts'

/** A request waiting behind the party's active session: a session to open, or an admitted pushed message. */
export type QueuedRequest =
  | { kind: 'open'; alert: '1200' | '1201'; sessionId: string | undefined }
  | { kind: 'push'; msg: SyncMLMessage; inbound: InboundMessage }

/** Everything the engine keeps about one party. */
export interface PartySlot {
  active: Session | undefined
  queue: QueuedRequest[]
  /** Recently ended sessions, so a late duplicate is answered from them (binding.md §3). */
  ended: EndedSession[]
  retryTimer: unknown
  failures: number
}

/** A session of the party runs: further requests wait behind it. */
export function busy(slot: PartySlot): boolean {
  return slot.active !== undefined && !slot.active.ended
}

/**
 * The engine's per-party bookkeeping, bounded: a flood of messages naming ever new parties must not grow memory,
 * so idle parties are forgotten past `maxTrackedParties`, and ended sessions past their memory horizon.
 */
export class Parties {
  readonly #slots = new Map<string, PartySlot>()

  constructor(
    private readonly constants: SessionConstants,
    private readonly clock: Clock,
  ) {}

  /** The party's slot if it has one; nothing is made. */
  peek(party: string): PartySlot | undefined {
    return this.#slots.get(party)
  }

  /** The party's slot, made when it has none; ended sessions past the horizon are dropped. */
  slot(party: string): PartySlot {
    let slot = this.#slots.get(party)
    if (slot === undefined) {
      slot = { active: undefined, queue: [], ended: [], retryTimer: undefined, failures: 0 }
      this.#slots.set(party, slot)
      if (this.#slots.size > this.constants.maxTrackedParties) this.#forgetIdle(party)
    }
    const horizon = this.clock.now() - this.constants.endedSessionMemoryMs
    // Filtered only when one has expired: an array made by filter() keeps room for 16 entries, in every engine.
    if (slot.ended.some((e) => e.at < horizon)) slot.ended = slot.ended.filter((e) => e.at >= horizon)
    return slot
  }

  /** The recently ended session of the party with this SessionID, if any. */
  ended(party: string, sessionId: string): EndedSession | undefined {
    return this.#slots.has(party) ? this.slot(party).ended.find((e) => e.sessionId === sessionId) : undefined
  }

  /**
   * Remembers an ended session. A copy of the exact length rather than a push (which keeps room for 16): these
   * lists are remembered for minutes in every engine of a fleet.
   */
  remember(slot: PartySlot, ended: EndedSession): void {
    const list = [...slot.ended, ended]
    slot.ended = list.length > this.constants.endedSessionsPerParty ? list.slice(1) : list
  }

  /** Drops the party's slot when nothing runs, waits or is remembered for it. */
  forgetIfIdle(party: string, slot: PartySlot): void {
    if (idle(slot) && slot.ended.length === 0 && slot.failures === 0) this.#slots.delete(party)
  }

  all(): IterableIterator<PartySlot> {
    return this.#slots.values()
  }

  /** Each party with its slot. */
  entries(): IterableIterator<[string, PartySlot]> {
    return this.#slots.entries()
  }

  /** Bounds the memory kept for parties: the oldest idle ones (only remembered sessions) are forgotten first. */
  #forgetIdle(keep: string): void {
    for (const [party, slot] of this.#slots) {
      if (this.#slots.size <= this.constants.maxTrackedParties) return
      if (party !== keep && idle(slot)) this.#slots.delete(party)
    }
  }
}

/** Nothing runs, waits or is scheduled for the party. */
function idle(slot: PartySlot): boolean {
  return !slot.active && slot.queue.length === 0 && slot.retryTimer === undefined
}
