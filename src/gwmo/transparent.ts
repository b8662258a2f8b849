/**
 * Transparent mode (GwMO seed 000, 8.6.1.3; binding.md §4.4): a DM Notification (Package 0) on the device's
 * `notification` channel, forwarded by a gateway or sent by the server itself, is checked exactly as if the server
 * had sent it: the digest with that server's credentials (SRVCRED, binding.md §6), whoever carried it. A valid one
 * opens a session with the server, Alert 1200 with the notification's session id; anything else is logged and
 * dropped, and nothing is ever sent back on this channel.
 *
 * Only a DM Server's account may trigger a session this way: a notification naming no account, or a gateway's
 * account, is dropped (a gateway manages the device in sessions it pushes, binding.md §3, not through Package 0).
 * A repeated session id opens one session only (OMA DM Notification 1.2, 6.2.2.10); the session manager
 * remembers the ids it has handled. The version field is reported, not refused (binding.md §6).
 */
import { verifyNotificationDigest } from '../auth/notification-digest.ts'
import { NOTIFICATION_VERSION_DM12, parseNotification, type Notification } from '../codec/notification.ts'
import type { Logger } from '../log.ts'
import { PartyInterval } from '../session/rate-limit.ts'
import type { InboundMessage } from '../transport/port.ts'
import { entryNonce, entrySecret, findAccount } from '../tree/accounts.ts'
import type { TreeOps } from '../tree/types.ts'

export interface TransparentOptions {
  tree: TreeOps
  /** The session manager's `openSession`. */
  openSession(serverId: string, request: { alert: 1200; notification: Notification }): Promise<void>
  now(): number
  logger: Logger
}

type DropReason = 'malformed' | 'unknown-server' | 'gateway' | 'no-credentials' | 'bad-digest'

export type NotificationOutcome =
  | { ok: true; serverId: string; sessionId: string; nonce: 'stored' | 'default-bytes' | 'default-text' }
  | { ok: false; reason: DropReason; serverId?: string }

/** A flood of bad notifications must not become a flood of log lines: one line per server id per interval. */
const DROP_LOG_INTERVAL_MS = 1_000
const DROP_LOG_KEYS = 256

export class NotificationHandler {
  readonly #options: TransparentOptions
  readonly #dropLog = new PartyInterval(DROP_LOG_INTERVAL_MS, DROP_LOG_KEYS)
  /** Drops since the last line logged, reported on the next one. */
  #dropped = 0

  constructor(options: TransparentOptions) {
    this.#options = options
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

    // An account may hold several SRVCRED entries (one per AAuthType); the notification digest is MD5 whatever
    // the session's scheme, so any of their secrets may have made it.
    for (const entry of entries) {
      const check = verifyNotificationDigest(n, entrySecret(tree, entry), entryNonce(tree, entry))
      if (!check.ok) continue
      // Logged once the digest holds, so that forged packets cannot fill the log with this line.
      if (n.version !== NOTIFICATION_VERSION_DM12) {
        logger.info('notification with an unusual version accepted', { server: serverId, version: n.version })
      }
      logger.info('notification accepted', { server: serverId, sessionId: n.sessionIdHex, uiMode: n.uiMode, matched: check.nonce })
      await this.#options.openSession(serverId, { alert: 1200, notification: n }).catch((error: unknown) => {
        logger.warn('session for a notification failed to open', { server: serverId, error })
      })
      return { ok: true, serverId, sessionId: n.sessionIdHex, nonce: check.nonce }
    }
    return this.#drop('bad-digest', serverId)
  }

  #drop(reason: DropReason, serverId?: string, fields: Record<string, unknown> = {}): NotificationOutcome {
    this.#dropped += 1
    if (this.#dropLog.allow(serverId ?? '\u0000malformed', this.#options.now())) {
      this.#options.logger.warn('notification dropped', { reason, server: serverId, dropped: this.#dropped, ...fields })
      this.#dropped = 0
    }
    return serverId === undefined ? { ok: false, reason } : { ok: false, reason, serverId }
  }
}
