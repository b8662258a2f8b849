/**
 * The one read view of the DM accounts (`./DMAcc/<x>`, DMAcc MO w7) for the layers above the tree, and the few
 * writes the device makes to them itself. Secrets are not part of the view: they are read with `entrySecret`
 * and `entryNonce` (the tree's `readSecret`), when a check needs them.
 */
import { textOf } from './formats.ts'
import type { NodeValue, SyncMLStatus, TreeOps } from './types.ts'

export type AccountRole = 'gateway' | 'server'

/** An `AppAuth/<y>` entry of an account (DMAcc MO, dm-reference.md §4.1). */
export interface AuthEntry {
  /** URI of the `./DMAcc/<x>/AppAuth/<y>` node. */
  uri: string
  /** `CLCRED`, `SRVCRED`, … */
  level: string
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
  /** `./DMAcc/<x>` */
  uri: string
  serverId: string
  name?: string
  addresses: AccountAddress[]
  /** The AAuthType the server prefers (an empty AAuthPref prefers nothing and is left out). */
  authPref?: string
  /**
   * The `AppAuth` entries of level CLCRED: the device's credentials toward the party, in tree order (an account
   * may hold one per AAuthType; AAuthPref and the party's Chal choose among them). An entry without a secret is
   * no credential (binding.md §6) and is not listed.
   */
  clientEntries: AuthEntry[]
  /** The entries of level SRVCRED: the party's credentials toward the device; likewise only those with a secret. */
  serverEntries: AuthEntry[]
  /** `gateway` when `Ext/GwMO/Role` says so (binding §1); every other account is a DM Server's. */
  role: AccountRole
  /**
   * binding.md §10, `Ext/GwmoAgent/Binding` = `http`: the party is reached by POSTing to `httpUrl`, its first
   * `http://` or `https://` Addr. Absent for every other account (MQTT, as §2 says), whatever its Addr is.
   */
  httpUrl?: string
  /** `Ext/GwmoAgent/PollSeconds`: a session with the party this often (none, or 0: no polling). */
  pollSeconds?: number
  /** `Ext/GwmoAgent/Encoding`: what the device's messages to the party are until the party answers in the other. */
  encoding?: 'xml' | 'wbxml'
}

/** The PEM texts an account's HTTPS connections use (binding.md §10): its CA, and its client certificate and key. */
export interface AccountTls {
  ca?: string
  cert?: string
  key?: string
}

/** The leaves under `./DMAcc/<x>/Ext/GwmoAgent` (binding.md §10); `ClientKey` is a secret (no Get, `isSecret`). */
export const AGENT_EXT = Object.freeze({
  binding: 'Ext/GwmoAgent/Binding',
  pollSeconds: 'Ext/GwmoAgent/PollSeconds',
  encoding: 'Ext/GwmoAgent/Encoding',
  ca: 'Ext/GwmoAgent/CA',
  clientCert: 'Ext/GwmoAgent/ClientCert',
  clientKey: 'Ext/GwmoAgent/ClientKey',
})

const HTTP_URL = /^https?:\/\//i

const DMACC = './DMAcc'

export function readAccounts(tree: TreeOps): Account[] {
  return (tree.children(DMACC) ?? []).flatMap((x) => readAccount(tree, x) ?? [])
}

export function findAccount(tree: TreeOps, serverId: string): Account | undefined {
  // Sessions look their party up for every message: only the account with that ServerID is read whole.
  for (const x of tree.children(DMACC) ?? []) {
    if (readLeafText(tree, `${DMACC}/${x}/ServerID`) === serverId) return readAccount(tree, x)
  }
  return undefined
}

/** The account's CA, client certificate and key, as the device reads them; the key is never part of `Account`. */
export function accountTls(tree: TreeOps, account: Account): AccountTls {
  const ca = readLeafText(tree, `${account.uri}/${AGENT_EXT.ca}`)
  const cert = readLeafText(tree, `${account.uri}/${AGENT_EXT.clientCert}`)
  const key = textOf(tree.readSecret(`${account.uri}/${AGENT_EXT.clientKey}`))
  return { ...(ca && { ca }), ...(cert && { cert }), ...(key && { key }) }
}

/** Marks an account as a DM Gateway's (binding §1), as the device principal. */
export function markGateway(ops: TreeOps, account: Account): SyncMLStatus {
  return write(ops, `${account.uri}/Ext/GwMO/Role`, { format: 'chr', data: 'gateway' })
}

/** Stores the nonce to use next with an `AppAuth` entry (`AAuthData`, format bin), as the device principal. */
export function setNonce(ops: TreeOps, authEntry: AuthEntry, bytes: Uint8Array): SyncMLStatus {
  return write(ops, authEntry.uri + '/AAuthData', { format: 'bin', data: bytes })
}

/** An entry's AAuthSecret as text ('' when there is none). */
export function entrySecret(tree: TreeOps, entry: AuthEntry): string {
  return textOf(tree.readSecret(`${entry.uri}/AAuthSecret`)) ?? ''
}

/**
 * An entry's AAuthData, the nonce (format `bin`: its octets; a `chr` value, as a bootstrap may write it, is
 * taken as its UTF-8 octets). No nonce stored is the empty nonce, the factory default both sides start from.
 */
export function entryNonce(tree: TreeOps, entry: AuthEntry): Uint8Array {
  const data = tree.readSecret(`${entry.uri}/AAuthData`)
  if (data === undefined) return new Uint8Array(0)
  return typeof data === 'string' ? new Uint8Array(Buffer.from(data, 'utf8')) : data
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
  const uri = `${DMACC}/${x}`
  const text = (rel: string): string | undefined => readLeafText(tree, `${uri}/${rel}`)
  const serverId = text('ServerID')
  if (serverId === undefined) return undefined
  const addresses: AccountAddress[] = []
  for (const y of tree.children(`${uri}/AppAddr`) ?? []) {
    const entry = `AppAddr/${y}/`
    const addr = text(entry + 'Addr')
    if (addr === undefined) continue
    const address: AccountAddress = { addr, addrType: text(entry + 'AddrType') ?? 'URI' }
    const firstPort = tree.children(`${uri}/${entry}Port`)?.[0]
    const portNbr = firstPort === undefined ? undefined : text(`${entry}Port/${firstPort}/PortNbr`)
    if (portNbr !== undefined && /^\d+$/.test(portNbr)) address.port = Number(portNbr)
    addresses.push(address)
  }
  const account: Account = {
    node: x, uri, serverId, addresses, clientEntries: [], serverEntries: [],
    role: text('Ext/GwMO/Role') === 'gateway' ? 'gateway' : 'server',
  }
  const name = text('Name')
  if (name !== undefined) account.name = name
  if (text(AGENT_EXT.binding) === 'http') {
    const url = addresses.find((a) => HTTP_URL.test(a.addr))?.addr
    if (url !== undefined) account.httpUrl = url
  }
  const poll = text(AGENT_EXT.pollSeconds)
  if (poll !== undefined && /^\d{1,9}$/.test(poll) && Number(poll) > 0) account.pollSeconds = Number(poll)
  const encoding = text(AGENT_EXT.encoding)
  if (encoding === 'xml' || encoding === 'wbxml') account.encoding = encoding
  const authPref = text('AAuthPref')
  if (authPref) account.authPref = authPref
  for (const y of tree.children(`${uri}/AppAuth`) ?? []) {
    const entryUri = `${uri}/AppAuth/${y}`
    const level = text(`AppAuth/${y}/AAuthLevel`)
    const type = text(`AppAuth/${y}/AAuthType`)
    if (level === undefined || type === undefined) continue
    const entry: AuthEntry = { uri: entryUri, level, type }
    const authName = text(`AppAuth/${y}/AAuthName`)
    if (authName !== undefined) entry.name = authName
    // binding.md §6: an account credential with an empty secret is no credential (md5 over `ServerID:` would pass).
    if (entrySecret(tree, entry) === '') continue
    if (level === 'CLCRED') account.clientEntries.push(entry)
    else if (level === 'SRVCRED') account.serverEntries.push(entry)
  }
  return account
}
