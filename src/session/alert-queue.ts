import type { Logger } from '../log.ts'
import type { AgentState, GenericAlertSpec, PendingAlert } from './agent-state.ts'
import type { Clock } from './engine.ts'
import type { QuietLog } from '../rate-limit.ts'

export interface AlertQueueDeps {
  state: AgentState
  /** Most alerts waiting for one party (`maxPendingAlertsPerParty`). */
  perParty: number
  clock: Clock
  quietLog: QuietLog
  logger: Logger
}

/**
 * The persisted Generic Alerts waiting for each party (binding.md §3), bounded per party (§11), so that a flood
 * cannot grow the state without end. Past the bound the oldest alert that may be dropped goes, with one
 * rate-limited line. Alerts of a type the layers above keep (`keep`: the GwMO layer's Location Update and
 * Associated Gateway, which it coalesces to one of each per server, the newest) are never dropped: they tell a
 * server what nothing else will tell it again. The rest (a gateway's Bootstrapped DMS List, which its next
 * detection gets anew) may be. When none of those waiting may go, a new alert that may is not queued (it still
 * goes in the message that sent it), and one that is kept is queued beyond the bound, which then holds at most
 * one more per kept type.
 */
export class AlertQueue {
  readonly #deps: AlertQueueDeps
  /** Made when the first type is kept. */
  #kept: Set<string> | undefined

  constructor(deps: AlertQueueDeps) {
    this.#deps = deps
  }

  /** Alerts of this Meta/Type are never dropped from a full queue. */
  keep(type: string): void {
    ;(this.#kept ??= new Set()).add(type)
  }

  /** Whether an alert of this type may be dropped from a full queue. */
  droppable(alert: GenericAlertSpec): boolean {
    return this.#kept?.has(alert.type) !== true
  }

  /** Queues `alert` for `party` (not saved: the caller saves); undefined when the queue was full and it may go. */
  enqueue(party: string, alert: GenericAlertSpec): PendingAlert | undefined {
    const { state, perParty, clock } = this.#deps
    const waiting = state.pendingAlerts(party)
    if (waiting.length >= perParty) {
      const oldest = waiting.find((pending) => this.droppable(pending.alert))
      if (oldest !== undefined) {
        state.removeAlert(party, oldest.id)
        this.#dropped(party, oldest.alert, 'the oldest that may go, for a newer one')
      } else if (this.droppable(alert)) {
        this.#dropped(party, alert, 'the new one: none waiting may go')
        return undefined
      }
    }
    return state.enqueueAlert(party, alert, clock.now())
  }

  #dropped(party: string, alert: GenericAlertSpec, which: string): void {
    const { quietLog, clock, logger, perParty } = this.#deps
    quietLog.note(`${party}\u0000alerts`, clock.now(), (suppressed) =>
      logger.warn('pending alert dropped: too many waiting for the party', { party, type: alert.type, which, max: perParty, suppressed }))
  }
}
