import { ALERT, buildGenericAlert } from '../codec/gwmo.ts'
import type { Alert, Item, ItemCommand } from '../codec/syncml-model.ts'
import type { TreeOps } from '../tree/types.ts'
import type { GenericAlertSpec, PendingAlert } from './agent-state.ts'
import { valueItem } from './handlers/items.ts'
import type { ReplyEntry } from './reply.ts'

/**
 * The device's own commands of Package 1 (OMA DM Protocol 1.2, 8.2; binding.md §3): the session Alert, the
 * DevInfo Replace, and the Generic Alerts waiting for the party. CmdIDs are given when the message is built.
 */

const DEVINFO = './DevInfo'

/**
 * An Alert of the device without items: `1201` (client-initiated) or `1200` (answering a DM Notification, or a
 * pushed session) opening Package 1, `1222` asking for the next message of a package.
 */
export function alertCommand(code: string): Alert {
  return { kind: 'Alert', cmdId: '', data: code, items: [] }
}

/**
 * `Replace` of the DevInfo leaves, one Item per node with Source/LocURI = the node URI (DM Protocol 1.2, 8.2:
 * "DevInfo sent with Replace, one Item per DevInfo node"), interior nodes (`Ext`, `Bearer`) walked through.
 */
export function devInfoReplace(tree: TreeOps): ItemCommand {
  const items: Item[] = []
  const walk = (uri: string, depth: number) => {
    for (const name of tree.children(uri) ?? []) {
      const child = `${uri}/${name}`
      const got = tree.get(child, 'device')
      if (got.status !== 200 || got.value === undefined) continue
      if (got.value.format === 'node') {
        if (depth < 8) walk(child, depth + 1)
        continue
      }
      items.push(valueItem(child, got.value))
    }
  }
  walk(DEVINFO, 0)
  return { kind: 'Replace', cmdId: '', items }
}

/** A Generic Alert as an `Alert 1226` command (DM Protocol 1.2, 8.7). */
export function genericAlertCommand(alert: GenericAlertSpec): Alert {
  return buildGenericAlert({ cmdId: '', ...alert })
}

/** The whole of our Package 1 content (also sent again after a challenge, DM Protocol 1.2, 9.3). */
export function package1(
  code: typeof ALERT.CLIENT_INITIATED_MGMT | typeof ALERT.SERVER_INITIATED_MGMT,
  tree: TreeOps,
  pending: readonly PendingAlert[],
): ReplyEntry[] {
  return [
    { kind: 'command', command: alertCommand(code) },
    { kind: 'command', command: devInfoReplace(tree) },
    ...pending.map(({ alert, id }): ReplyEntry => ({ kind: 'command', command: genericAlertCommand(alert), alertId: id })),
  ]
}
