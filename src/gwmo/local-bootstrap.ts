/**
 * Gateway bootstrap by a local DM Bootstrap Server (GwMO seed 001, 8.4.2; binding.md §4.7): a bootstrap message on
 * the device's `bootstrap` channel. In order, and the first failure stops it with nothing changed:
 * 1. its `SEC` method is not in a backoff after repeated MAC failures (binding.md §6, `BootstrapThrottle`): if
 *    it is, the MAC is not even checked;
 * 2. its MAC verifies with the key of its `SEC` method (OMA DM Security 1.2, 5.1.7.2), before a byte of it is
 *    parsed; `USERPIN` alone is refused with a PIN shorter than 6 characters (binding.md §6);
 * 3. it decodes (WBXML, the form OMA DM Bootstrap defines, or XML, our extension for MQTT), and its SyncHdr
 *    names this device (a bootstrap MAC'd with a network secret shared by many devices must not be replayed
 *    from one device's topic to another's);
 * 4. it is applied in one transaction, all or nothing (`applyBootstrap`), so that a duplicate delivery of an Add
 *    bootstrap fails cleanly, and the tree is flushed. It only adds accounts (binding.md §6; gateway bootstrap,
 *    GwMO 1.0, 8.4.2): a message that would replace, delete or add to an existing account, or write anything
 *    outside the accounts it creates, is refused whole;
 * 5. the device opens a client-initiated session (1201) with each server the bootstrap configured, the gateway
 *    among them (OMA DM Bootstrap 1.2: "SHOULD automatically initiate a client-initiated session to any DM
 *    server configured in the bootstrap").
 * No response is ever sent on this channel (OMA DM Bootstrap 1.2: "a response MUST NOT be sent back"). Refusals
 * are logged with their reason, one line each, except those of a backoff: these are counted into the next line
 * of their method (`throttled`), so that a flood of guesses does not flood the log. The secrets and the MAC are
 * never logged.
 */
import { secMethodOf, verifyBootstrapMac, type BootstrapSecrets } from '../auth/bootstrap-mac.ts'
import { decodeMessage } from '../codec/syncml.ts'
import type { Logger } from '../log.ts'
import type { InboundMessage } from '../session/port.ts'
import { applyBootstrap, type BootstrapTarget } from '../tree/bootstrap.ts'
import type { BootstrapThrottle } from './bootstrap-throttle.ts'

export interface LocalBootstrapOptions {
  tree: BootstrapTarget & { flush(): Promise<void> }
  deviceId: string
  secrets: BootstrapSecrets
  /** Opens a client-initiated session (Alert 1201) with a server. */
  openSession(serverId: string): Promise<unknown>
  /** The device's count of MAC failures per SEC method, kept from one bootstrap to the next. */
  throttle: BootstrapThrottle
  logger: Logger
}

export type LocalBootstrapOutcome =
  | { ok: true; serverIds: string[] }
  | { ok: false; stage: 'throttle' | 'mac' | 'decode' | 'target' | 'apply' | 'flush'; reason: string }

/** MQTT 5 user property names are case-sensitive; a sender that wrote `sec` or `Mac` is still understood. */
function property(properties: Record<string, string>, name: string): string | undefined {
  if (properties[name] !== undefined) return properties[name]
  const key = Object.keys(properties).find((k) => k.toLowerCase() === name.toLowerCase())
  return key === undefined ? undefined : properties[key]
}

const MAC_REASON: Record<string, string> = {
  'missing-sec': 'no SEC property',
  'unknown-sec': 'SEC is not NETWORKID, USERPIN or USERPIN_NETWORKID',
  'secret-not-configured': 'the secret of its SEC method is not configured',
  'short-pin': 'USERPIN alone is refused: the configured PIN is shorter than 6 characters',
  'missing-mac': 'no MAC property',
  'bad-mac': 'the MAC does not verify',
}

export async function handleLocalBootstrap(
  message: InboundMessage,
  options: LocalBootstrapOptions,
): Promise<LocalBootstrapOutcome> {
  const { logger, throttle } = options
  const sec = property(message.properties, 'SEC')
  const method = secMethodOf(sec)
  const admission = method === undefined ? { ok: true as const, throttled: 0 } : throttle.admit(method)
  if (!admission.ok) {
    // Not logged: counted into the next line of the method.
    const seconds = Math.ceil(admission.retryInMs / 1000)
    return { ok: false, stage: 'throttle', reason: `SEC=${method}: refused unchecked for ${seconds} s more after repeated MAC failures` }
  }
  /** Logged with every outcome of the bootstrap: its method, and the refusals of the backoff before it. */
  const context = { ...(method !== undefined && { method }), ...(admission.throttled > 0 && { throttled: admission.throttled }) }
  const refuse = (stage: Exclude<LocalBootstrapOutcome, { ok: true }>['stage'], reason: string, extra = {}): LocalBootstrapOutcome => {
    logger.warn('bootstrap refused', { stage, reason, ...context, ...extra, bytes: message.payload.length })
    return { ok: false, stage, reason }
  }

  const check = verifyBootstrapMac(message.payload, sec, property(message.properties, 'MAC'), options.secrets)
  if (!check.ok) {
    if (check.reason !== 'bad-mac' || method === undefined) {
      // Refused before any MAC was checked, so the backoff does not bound it: its line is rate-limited instead.
      const reason = MAC_REASON[check.reason] ?? check.reason
      throttle.quietly(reason, (suppressed) =>
        logger.warn('bootstrap refused', { stage: 'mac', reason, ...context, bytes: message.payload.length, suppressed }))
      return { ok: false, stage: 'mac', reason }
    }
    const { failures, backoffMs } = throttle.failed(method)
    return refuse('mac', MAC_REASON['bad-mac']!, { failures, ...(backoffMs > 0 && { backoffSeconds: backoffMs / 1000 }) })
  }
  throttle.succeeded(check.method)

  const decoded = decodeMessage(message.payload, message.contentType)
  if (!decoded.ok) return refuse('decode', `${decoded.error.code}: ${decoded.error.message}`)
  const target = decoded.value.hdr.target.locUri.trim()
  if (target !== options.deviceId) return refuse('target', `addressed to ${JSON.stringify(target)}, not this device`)

  const applied = applyBootstrap(options.tree, decoded.value, { newAccountsOnly: true })
  if (!applied.ok) return refuse('apply', applied.reason)
  try {
    await options.tree.flush()
  } catch (error) {
    // All of it or none (binding.md §4.7): what the store does not hold is taken back out of the tree too, so
    // no session opens on it, and the bootstrap server's next delivery of the message applies afresh.
    applied.undo?.()
    logger.error('bootstrap not stored, so not applied', { error })
    return { ok: false, stage: 'flush', reason: (error as Error).message }
  }
  logger.info('bootstrap applied', { ...context, method: check.method, servers: applied.serverIds })

  for (const serverId of applied.serverIds) {
    options.openSession(serverId).catch((error: unknown) => {
      logger.warn('session after bootstrap failed', { server: serverId, error })
    })
  }
  return { ok: true, serverIds: applied.serverIds }
}
