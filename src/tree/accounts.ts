/**
 * A typed read view of the DM accounts (`./DMAcc/<x>`, DMAcc MO w7) for the layers above the tree, and the few
 * writes the device makes to them itself. Secrets are not part of the view: they are read with
 * `readSecret(<AuthEntry.uri>/AAuthSecret)` and `/AAuthData`.
 */
import { textOf } from './formats.ts'
import type { NodeValue, SyncMLStatus, TreeOps } from './types.ts'

export type AccountRole = 'gateway' | 'server'

export interface AuthEntry {
  /** URI of the `./DMAcc/<x>/AppAuth/<y>` node. */
  uri: string
  /** `AAuthType`: `DIGEST` (syncml:auth-md5), `BASIC`, `HMAC`… */
  type: string
  /** `AAuthName`. */
  name?: string
}

export interface AccountAddress {
  addr: string
  /** `URI`, `IPv4` or `IPv6` (`URI` when the account does not say). */
  addrType: string
  port?: number
}

export interface Account {
  /** The account's node name, `<x>` in `./DMAcc/<x>`. */
  node: string
  serverId: string
  name?: string
  addresses: AccountAddress[]
  authPref?: string
  /** The `AppAuth` entry with AAuthLevel CLCRED: the device's credentials toward the server. */
  clientAuth?: AuthEntry
  /** The `AppAuth` entry with AAuthLevel SRVCRED: the server's credentials toward the device. */
  serverAuth?: AuthEntry
  /** `gateway` when `Ext/GwMO/Role` says so (binding §1); every other account is a DM Server's. */
  role: AccountRole
}

export function readAccounts(tree: TreeOps): Account[] {
  return (tree.children('./DMAcc') ?? []).flatMap((x) => readAccount(tree, x) ?? [])
}

export function findAccount(tree: TreeOps, serverId: string): Account | undefined {
  // Sessions look their party up for every message: only the account with that ServerID is read whole.
  for (const x of tree.children('./DMAcc') ?? []) {
    if (readLeafText(tree, `./DMAcc/${x}/ServerID`) === serverId) return readAccount(tree, x)
  }
  return undefined
}

/** Marks an account as a DM Gateway's (binding §1), as the device principal. */
export function markGateway(ops: TreeOps, account: Account): SyncMLStatus {
  return write(ops, `./DMAcc/${account.node}/Ext/GwMO/Role`, { format: 'chr', data: 'gateway' })
}

/** Stores the nonce to use next with an `AppAuth` entry (`AAuthData`, format bin), as the device principal. */
export function setNonce(ops: TreeOps, authEntry: AuthEntry, bytes: Uint8Array): SyncMLStatus {
  return write(ops, authEntry.uri + '/AAuthData', { format: 'bin', data: bytes })
}

function write(ops: TreeOps, uri: string, value: NodeValue): SyncMLStatus {
  const status = ops.replace(uri, value, 'device')
  return status === 404 ? ops.add(uri, value, 'device') : status
}

/** A leaf's value as text, read as the device; undefined for a missing node or an interior one. */
export function readLeafText(tree: TreeOps, uri: string): string | undefined {
  const result = tree.get(uri, 'device')
  return result.status === 200 && result.value?.format !== 'node' ? textOf(result.value?.data) : undefined
}

function readAccount(tree: TreeOps, x: string): Account | undefined {
  const base = `./DMAcc/${x}/`
  const text = (rel: string): string | undefined => readLeafText(tree, base + rel)
  const serverId = text('ServerID')
  if (serverId === undefined) return undefined
  const addresses: AccountAddress[] = []
  for (const y of tree.children(base + 'AppAddr') ?? []) {
    const entry = `AppAddr/${y}/`
    const addr = text(entry + 'Addr')
    if (addr === undefined) continue
    const address: AccountAddress = { addr, addrType: text(entry + 'AddrType') ?? 'URI' }
    const firstPort = tree.children(base + entry + 'Port')?.[0]
    const portNbr = firstPort === undefined ? undefined : text(`${entry}Port/${firstPort}/PortNbr`)
    if (portNbr !== undefined && /^\d+$/.test(portNbr)) address.port = Number(portNbr)
    addresses.push(address)
  }
  const account: Account = { node: x, serverId, addresses, role: text('Ext/GwMO/Role') === 'gateway' ? 'gateway' : 'server' }
  const name = text('Name')
  if (name !== undefined) account.name = name
  const authPref = text('AAuthPref')
  if (authPref !== undefined) account.authPref = authPref
  for (const y of tree.children(base + 'AppAuth') ?? []) {
    const entry = `AppAuth/${y}/`
    const type = text(entry + 'AAuthType')
    if (type === undefined) continue
    const auth: AuthEntry = { uri: `${base}AppAuth/${y}`, type }
    const authName = text(entry + 'AAuthName')
    if (authName !== undefined) auth.name = authName
    const level = text(entry + 'AAuthLevel')
    if (level === 'CLCRED') account.clientAuth ??= auth
    else if (level === 'SRVCRED') account.serverAuth ??= auth
  }
  return account
}
