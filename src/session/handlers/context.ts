import type { Command, Status } from '../../codec/syncml-model.ts'
import type { Logger } from '../../log.ts'
import type { MountedNode } from '../../tree/mount.ts'
import type { Transaction, TreeOps } from '../../tree/types.ts'
import type { ExternalWrite, MadeWrite } from '../external-calls.ts'
import type { AlertRegistry } from '../alerts.ts'
import type { GenericAlertSpec } from '../agent-state.ts'
import type { ReplyBuilder } from '../reply.ts'

/** The tree operations of one inbound message: its transaction, which nests for `Atomic`. */
export interface MessageOps extends TreeOps {
  /** A nested transaction, or undefined where transactions do not nest further (inside an Atomic). */
  begin(): MessageTransaction | undefined
  /**
   * Runs `followUp` once the message's changes are committed and durable, after its reply was handed over; never
   * if this transaction rolls back or the message's commit is refused. For work that must not start on a change
   * that may not happen: GwMO's Associated Gateway sessions follow a detection only once it is stored.
   */
  afterCommit(followUp: () => void): void
  /** The node mounted at `uri` (external.ts), if any. */
  external(uri: string): MountedNode | undefined
  /**
   * A Replace's write to an external node, made once the commands it depends on have all succeeded: the message's
   * (after its commit is durable), or those of the Atomic this transaction is (binding.md §8).
   */
  deferWrite(write: ExternalWrite): void
  /** Writes an Atomic made before the message's commit: set back if that commit is refused or not stored. */
  madeEarly(made: readonly MadeWrite[]): void
}

export interface MessageTransaction extends MessageOps, Pick<Transaction, 'commit' | 'rollback'> {
  /** The writes deferred in this transaction, in command order. */
  readonly writes: readonly ExternalWrite[]
  /** The writes its Atomics made (`madeEarly`). */
  readonly made: readonly MadeWrite[]
}

/** The party a session runs with, as the handlers may see it. */
export interface PartyInfo {
  /** Its LocURI: the ServerID of the account the device holds for it (binding.md §1). */
  serverId: string
  /** Whether the device holds an account for it. */
  hasAccount: boolean
  /** Whether it authenticated in this session (binding.md §6). */
  authenticated: boolean
}

export interface SessionInfo {
  sessionId: string
  /** Who opened the session: the device (Package 1) or the party (a message pushed over MQTT, binding.md §3). */
  initiator: 'device' | 'party'
  /** The MsgID of the inbound message being answered. */
  msgId: string
  /**
   * No session with this party has completed before (the account flag `firstSessionDone` is unset): GwMO 1.0,
   * 8.4.1 lets a DM Server bootstrap the gateway account in the device's first session with it.
   */
  first: boolean
}

/**
 * What a command handler gets (STYLE.md: a narrow context, not the whole agent): the message's transaction,
 * the principal the ACLs are checked against, the reply being built, and a few session hooks.
 */
export interface HandlerContext {
  ops: MessageOps
  principal: { serverId: string }
  reply: ReplyBuilder
  alerts: AlertRegistry
  party: PartyInfo
  session: SessionInfo
  logger: Logger
  /** Aborted when the agent stops: given to the callbacks of external nodes. */
  signal: AbortSignal
  /** Hands a Status of the party to the session (auth results, acknowledged Generic Alerts). */
  consumeStatus(status: Status): void
  /** Alert 1223: the session ends, and no reply is sent (OMA DM Protocol 1.2, 8.4). */
  abortSession(): void
  /** Whether the session was aborted by a command already run; later commands are not run. */
  readonly aborted: boolean
  /** Adds a Generic Alert to the reply; persisted until the party acknowledges it when it holds an account. */
  sendGenericAlert(alert: GenericAlertSpec): Promise<void>
  /**
   * A warning a party's messages can repeat (binding.md §11): `write` runs at most once a second per party and
   * `kind`, given the count of those left out.
   */
  quietly(kind: string, write: (suppressed: number) => void): void
  /** Runs a nested command (inside Atomic or Sequence) with a context whose reply is `reply`. */
  dispatch(command: Command, reply: ReplyBuilder, ops: MessageOps): Promise<void>
}

export type CommandHandler<C extends Command = Command> = (command: C, ctx: HandlerContext) => void | Promise<void>
