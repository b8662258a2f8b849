/**
 * Transparent mode (GwMO seed 000, 8.6.1.3; binding.md §4.4): a DM Notification (Package 0) on the device's
 * `notification` channel, forwarded by a gateway or sent by the server itself, is checked exactly as if the server
 * had sent it: the digest with that server's credentials (SRVCRED, binding.md §6), whoever carried it. A valid one
 * opens a session with the server, Alert 1200 with the notification's session id; anything else is logged and
 * dropped, and nothing is ever sent back on this channel.
 *
 * Only a DM Server's account may trigger a session this way: a notification naming no account, or a gateway's
 * account, is dropped (a gateway manages the device in sessions it pushes, binding.md §3, not through Package 0).
 * The version field is reported, not refused (binding.md §6).
 *
 * Replay (binding.md §6): the session ids of the notifications acted on are remembered per server across
 * restarts (`NotificationMemory`: the last 64 and all of the last 24 hours), and the id is durable before the
 * session it allows opens, so a captured notification replayed after other notifications, after a restart or a
 * crash, or hours later opens nothing (OMA DM Notification 1.2, 6.2.2.10). Verifying a digest changes no stored
 * nonce: the session it opens begins with the server's Cred made with that nonce, and that spends it. The default
 * nonce is tried only while the server is out of step: a notification that fails on the stored nonce puts it out
 * of step (and is dropped); one that verifies with the stored nonce puts it back in step; one accepted on the
 * default nonce leaves it as it is (the session it opens gives the server a fresh nonce, which its next
 * notification proves it has).
 */
import { verifyNotificationDigest } from '../auth/notification-digest.ts'
import { NOTIFICATION_VERSION_DM12, parseNotification, type Notification } from '../codec/notification.ts'
import type { Logger } from '../log.ts'
import type { AgentState } from '../session/agent-state.ts'
import { PartyInterval } from '../rate-limit.ts'
import type { InboundMessage } from '../session/port.ts'
import { entryNonce, entrySecret, findAccount, type AuthEntry } from '../tree/accounts.ts'
import type { TreeOps } from '../tree/types.ts'
import { dmServers } from './detection.ts'
import { NotificationMemory } from './notification-memory.ts'

export interface TransparentOptions {
  tree: TreeOps
  /** Where the handled session ids and the out-of-step marks are kept (`NotificationMemory`). */
  state: AgentState
  /** The session manager's `openSession`. */
  openSession(serverId: string, request: { alert: 1200; notification: Notification }): Promise<void>
  /** The session manager's `inOrder`: a notification is checked in arrival order with its server's messages. */
  inOrder?<T>(serverId: string, task: () => T): Promise<T>
  now(): number
  logger: Logger
}

type DropReason = 'malformed' | 'unknown-server' | 'gateway' | 'no-credentials' | 'bad-digest' | 'repeat' | 'not-saved'

type MatchedNonce = 'stored' | 'default-bytes' | 'default-text'

/** What the check of a notification found and marked (`NotificationHandler.handle`). */
type Decision = { matched: undefined; marked: boolean } | { matched: MatchedNonce; now: number; repeat: boolean }

export type NotificationOutcome =
  | { ok: true; serverId: string; sessionId: string; nonce: MatchedNonce }
  | { ok: false; reason: DropReason; serverId?: string }

/**
 * A flood of bad notifications must not become a flood of log lines: one line per reason and server id per
 * interval (a replay flood does not hide the forged notification beside it, nor the other way round).
 */
const DROP_LOG_INTERVAL_MS = 1_000
const DROP_LOG_KEYS = 256

export class NotificationHandler {
  readonly #options: TransparentOptions
  readonly #dropLog = new PartyInterval(DROP_LOG_INTERVAL_MS, DROP_LOG_KEYS)
  /** Drops since the last line logged, reported on the next one. */
  #dropped = 0

  readonly #memory: NotificationMemory

  constructor(options: TransparentOptions) {
    this.#options = options
    this.#memory = new NotificationMemory(options.state, () => dmServers(options.tree))
  }

  async handle(message: InboundMessage): Promise<NotificationOutcome> {
    const { logger } = this.#options
    const parsed = parseNotification(message.payload)
    if (!parsed.ok) {
      return this.#drop('malformed', undefined, { code: parsed.error.code, error: parsed.error.message })
    }
    const n = parsed.value
    const serverId = n.serverId
    const tree = this.#options.tree
    const account = findAccount(tree, serverId)
    if (account === undefined) return this.#drop('unknown-server', serverId)
    if (account.role === 'gateway') return this.#drop('gateway', serverId)
    const entries = account.serverEntries
    if (entries.length === 0) return this.#drop('no-credentials', serverId)

    const memory = this.#memory
    const sessionId = n.sessionIdHex
    // In arrival order with the server's own messages: the one before it may store the nonce its digest is made
    // with, and the one after it may replace the nonce it was made with. The check and what it marks are one step,
    // so that the notification right behind this one sees them.
    const decide = (): Decision => {
      const matched = this.#verify(n, entries, memory.outOfStep(serverId))
      // binding.md §6: a notification that fails on the stored nonce puts the server out of step.
      if (matched === undefined) return { matched, marked: memory.markOutOfStep(serverId) }
      const now = this.#options.now()
      // A repeat changes nothing, not even the out-of-step mark: it proves nothing about the server's nonce now.
      if (memory.handled(serverId, sessionId, now)) return { matched, now, repeat: true }
      // Durable before the session opens: no crash, however soon after, lets this notification open a second one.
      memory.record(serverId, sessionId, now, matched === 'stored')
      return { matched, now, repeat: false }
    }
    const decided = this.#options.inOrder ? await this.#options.inOrder(serverId, decide) : decide()
    if (decided.matched === undefined) {
      // Saved at once, and only on the change, so a flood of forged notifications costs one write.
      if (decided.marked) await memory.save().catch((error: unknown) => logger.warn('agent state save failed', { error }))
      return this.#drop('bad-digest', serverId)
    }
    const { matched, now } = decided
    if (decided.repeat) return this.#drop('repeat', serverId, { sessionId })
    // Logged once the digest holds, so that forged packets cannot fill the log with this line.
    if (n.version !== NOTIFICATION_VERSION_DM12) {
      logger.info('notification with an unusual version accepted', { server: serverId, version: n.version })
    }
    try {
      await memory.save()
    } catch (error) {
      // Not acted on, so not remembered: the server's next try opens the session once the state can be saved.
      memory.forget(serverId, sessionId, now)
      return this.#drop('not-saved', serverId, { sessionId, error })
    }
    logger.info('notification accepted', { server: serverId, sessionId, uiMode: n.uiMode, matched })
    await this.#options.openSession(serverId, { alert: 1200, notification: n }).catch((error: unknown) => {
      logger.warn('session for a notification failed to open', { server: serverId, error })
    })
    return { ok: true, serverId, sessionId, nonce: matched }
  }

  /**
   * Which nonce made the digest, with any of the account's SRVCRED secrets (an account may hold one entry per
   * AAuthType; the notification digest is MD5 whatever the session's scheme): the stored nonce of each entry
   * first, then, only for a server out of step, the default nonce.
   */
  #verify(n: Notification, entries: AuthEntry[], outOfStep: boolean): MatchedNonce | undefined {
    const tree = this.#options.tree
    for (const entry of entries) {
      if (verifyNotificationDigest(n, entrySecret(tree, entry), entryNonce(tree, entry), { defaultNonce: false }).ok) return 'stored'
    }
    if (!outOfStep) return undefined
    for (const entry of entries) {
      const check = verifyNotificationDigest(n, entrySecret(tree, entry), undefined, { defaultNonce: true })
      if (check.ok) return check.nonce
    }
    return undefined
  }

  #drop(reason: DropReason, serverId?: string, fields: Record<string, unknown> = {}): NotificationOutcome {
    this.#dropped += 1
    if (this.#dropLog.allow(`${reason}\u0000${serverId ?? ''}`, this.#options.now())) {
      this.#options.logger.warn('notification dropped', { reason, server: serverId, dropped: this.#dropped, ...fields })
      this.#dropped = 0
    }
    return serverId === undefined ? { ok: false, reason } : { ok: false, reason, serverId }
  }
}
