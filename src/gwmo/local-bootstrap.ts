/**
 * Gateway bootstrap by a local DM Bootstrap Server (GwMO seed 001, 8.4.2; binding.md §4.7): a bootstrap message on
 * the device's `bootstrap` channel. In order, and the first failure stops it with nothing changed:
 * 1. its MAC verifies with the key of its `SEC` method (OMA DM Security 1.2, 5.1.7.2), before a byte of it is
 *    parsed;
 * 2. it decodes (WBXML, the form OMA DM Bootstrap defines, or XML, our extension for MQTT), and its SyncHdr
 *    names this device (a bootstrap MAC'd with a network secret shared by many devices must not be replayed
 *    from one device's topic to another's);
 * 3. it is applied in one transaction, all or nothing (`applyBootstrap`), so that a duplicate delivery of an Add
 *    bootstrap fails cleanly, and the tree is flushed;
 * 4. the device opens a client-initiated session (1201) with each server the bootstrap configured, the gateway
 *    among them (OMA DM Bootstrap 1.2: "SHOULD automatically initiate a client-initiated session to any DM
 *    server configured in the bootstrap").
 * No response is ever sent on this channel (OMA DM Bootstrap 1.2: "a response MUST NOT be sent back"). Refusals
 * are logged with their reason; the secrets and the MAC never are.
 */
import { verifyBootstrapMac, type BootstrapSecrets } from '../auth/bootstrap-mac.ts'
import { decodeMessage } from '../codec/syncml.ts'
import type { Logger } from '../log.ts'
import type { InboundMessage } from '../transport/port.ts'
import { applyBootstrap, type BootstrapTarget } from '../tree/bootstrap.ts'

export interface LocalBootstrapOptions {
  tree: BootstrapTarget & { flush(): Promise<void> }
  deviceId: string
  secrets: BootstrapSecrets
  /** Opens a client-initiated session (Alert 1201) with a server. */
  openSession(serverId: string): Promise<unknown>
  logger: Logger
}

export type LocalBootstrapOutcome =
  | { ok: true; serverIds: string[] }
  | { ok: false; stage: 'mac' | 'decode' | 'target' | 'apply' | 'flush'; reason: string }

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
  'missing-mac': 'no MAC property',
  'bad-mac': 'the MAC does not verify',
}

export async function handleLocalBootstrap(
  message: InboundMessage,
  options: LocalBootstrapOptions,
): Promise<LocalBootstrapOutcome> {
  const { logger } = options
  const refuse = (stage: Exclude<LocalBootstrapOutcome, { ok: true }>['stage'], reason: string): LocalBootstrapOutcome => {
    logger.warn('bootstrap refused', { stage, reason, bytes: message.payload.length })
    return { ok: false, stage, reason }
  }

  const sec = property(message.properties, 'SEC')
  const check = verifyBootstrapMac(message.payload, sec, property(message.properties, 'MAC'), options.secrets)
  if (!check.ok) return refuse('mac', MAC_REASON[check.reason] ?? check.reason)

  const decoded = decodeMessage(message.payload, message.contentType)
  if (!decoded.ok) return refuse('decode', `${decoded.error.code}: ${decoded.error.message}`)
  const target = decoded.value.hdr.target.locUri.trim()
  if (target !== options.deviceId) return refuse('target', `addressed to ${JSON.stringify(target)}, not this device`)

  const applied = applyBootstrap(options.tree, decoded.value)
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
  logger.info('bootstrap applied', { method: check.method, servers: applied.serverIds })

  for (const serverId of applied.serverIds) {
    options.openSession(serverId).catch((error: unknown) => {
      logger.warn('session after bootstrap failed', { server: serverId, error })
    })
  }
  return { ok: true, serverIds: applied.serverIds }
}
