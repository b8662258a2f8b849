import type { Alert, Command } from '../codec/syncml-model.ts'
import type { Logger } from '../log.ts'
import type { GenericAlertSpec } from './agent-state.ts'
import type { MessageOps, PartyInfo, SessionInfo } from './handlers/context.ts'

/**
 * Alert codes the layers above handle (the GwMO layer registers 1230, Device Detection). A handler runs inside
 * the session of the party that sent the alert and answers with the Status code for it.
 */
export interface AlertContext {
  alert: Alert
  party: PartyInfo
  session: SessionInfo
  /** The message's transaction: changes made here are committed (and flushed) with the message's. */
  ops: MessageOps
  /**
   * Adds a Generic Alert (1226) to this reply. For a party with an account it is also persisted in that party's
   * queue until a Status 200/202 comes back (binding.md §3), so an unanswered one goes out again next session.
   */
  sendGenericAlert(alert: GenericAlertSpec): Promise<void>
  logger: Logger
}

export type AlertHandler = (ctx: AlertContext) => number | Promise<number>

export interface AlertRegistrationOptions {
  /**
   * Lets this alert run for a party that has not authenticated (binding.md §4.1: "a configuration option may
   * also let it accept unauthenticated detections on a trusted LAN"). Asked for each such message; absent or
   * false means the default: only authenticated parties, and a party without an account is never answered.
   * A message is admitted unauthenticated only when every command in it, other than Status, is an alert whose
   * registration says yes for that party.
   */
  acceptUnauthenticated?: (party: { serverId: string; hasAccount: boolean }) => boolean
}

export interface AlertRegistration extends AlertRegistrationOptions {
  handler: AlertHandler
}

export class AlertRegistry {
  #handlers = new Map<string, AlertRegistration>()

  /** Registers the handler of an alert code; a second registration of the same code replaces the first. */
  register(code: number | string, handler: AlertHandler, options: AlertRegistrationOptions = {}): void {
    // Named fields, not a spread: registrations then share one object shape across the engines of a process.
    this.#handlers.set(String(code).trim(), { handler, acceptUnauthenticated: options.acceptUnauthenticated })
  }

  lookup(code: string): AlertRegistration | undefined {
    return this.#handlers.get(code.trim())
  }

  /**
   * Whether a message may run for a party that has not authenticated: it holds at least one alert, and every
   * command other than Status is an alert whose registration admits the party.
   */
  admitsMessage(body: readonly Command[], party: { serverId: string; hasAccount: boolean }): boolean {
    const commands = body.filter((c) => c.kind !== 'Status')
    return commands.length > 0 && commands.every((c) => c.kind === 'Alert' && this.lookup(c.data)?.acceptUnauthenticated?.(party) === true)
  }
}
