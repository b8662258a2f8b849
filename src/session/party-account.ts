import { findAccount } from '../tree/accounts.ts'
import { textOf } from '../tree/formats.ts'
import type { TreeOps } from '../tree/types.ts'
import type { AuthEntry } from './credentials.ts'

/**
 * The parts of a party's `./DMAcc/<x>` account a session needs (DMAcc MO, dm-reference.md §4.1): where to
 * send, and every `AppAuth/<y>` entry (an account may hold several per level; AAuthPref and the party's
 * Chal choose among them). Read as the device principal; secrets and nonces through `readSecret`.
 */
export interface PartyAccount {
  serverId: string
  /** `./DMAcc/<x>` */
  uri: string
  /** The first `mqtt://`/`mqtts://` AppAddr (binding.md §2), if any. */
  address?: string
  authPref?: string
  /** CLCRED entries: the device's credentials toward the party. */
  clientEntries: AuthEntry[]
  /** SRVCRED entries: the party's credentials toward the device. */
  serverEntries: AuthEntry[]
}

const DMACC = './DMAcc'
const MQTT_URL = /^mqtts?:\/\//i

function leaf(tree: TreeOps, uri: string): string | undefined {
  const got = tree.get(uri, 'device')
  if (got.status !== 200 || got.value === undefined || got.value.format === 'node') return undefined
  return textOf(got.value.data) ?? ''
}

/**
 * The account whose ServerID is `serverId`, or undefined. The tree's account view finds it; every AppAuth
 * entry is read here, since that view keeps only the first of each level and AAuthPref chooses among them.
 */
export function findPartyAccount(tree: TreeOps, serverId: string): PartyAccount | undefined {
  const found = findAccount(tree, serverId)
  if (found === undefined) return undefined
  const uri = `${DMACC}/${found.node}`
  const account: PartyAccount = {
    serverId,
    uri,
    address: found.addresses.find((a) => MQTT_URL.test(a.addr))?.addr,
    // An empty AAuthPref prefers nothing.
    authPref: found.authPref || undefined,
    clientEntries: [],
    serverEntries: [],
  }
  for (const y of tree.children(`${uri}/AppAuth`) ?? []) {
    const entryUri = `${uri}/AppAuth/${y}`
    const level = leaf(tree, `${entryUri}/AAuthLevel`)
    const type = leaf(tree, `${entryUri}/AAuthType`)
    if (level === undefined || type === undefined) continue
    const entry: AuthEntry = { uri: entryUri, level, type, name: leaf(tree, `${entryUri}/AAuthName`) }
    if (level === 'CLCRED') account.clientEntries.push(entry)
    else if (level === 'SRVCRED') account.serverEntries.push(entry)
  }
  return account
}

/** An entry's AAuthSecret as text ('' when there is none). */
export function readEntrySecret(tree: TreeOps, entry: AuthEntry): string {
  return textOf(tree.readSecret(`${entry.uri}/AAuthSecret`)) ?? ''
}

/**
 * An entry's AAuthData, the nonce (format `bin`: its octets; a `chr` value, as a bootstrap may write it, is
 * taken as its UTF-8 octets). No nonce stored is the empty nonce, the factory default both sides start from.
 */
export function readEntryNonce(tree: TreeOps, entry: AuthEntry): Uint8Array {
  const data = tree.readSecret(`${entry.uri}/AAuthData`)
  if (data === undefined) return new Uint8Array(0)
  return typeof data === 'string' ? new Uint8Array(Buffer.from(data, 'utf8')) : data
}

/** Stores a nonce in an entry's AAuthData as the device (binary, `bin`); the tree's status code. */
export { setNonce as storeEntryNonce } from '../tree/accounts.ts'
