import { decodeNonce } from '../auth/nonce.ts'
import type { Status } from '../codec/syncml-model.ts'
import { entryNonce, entrySecret, setNonce, type Account, type AuthEntry } from '../tree/accounts.ts'
import type { TreeOps } from '../tree/types.ts'
import { chooseEntry, outboundAuth, schemeOfAAuthType, schemeOfMetaType, strength, type OutboundAuth } from './credentials.ts'

/**
 * What the party's Status for our SyncHdr says: our credentials accepted (perhaps with the nonce for our next
 * message), challenged (we send again with new ones), refused outright, or a Chal for a weaker scheme than the
 * account's, which is never obeyed (binding.md §6: the device's basic password must never be asked out of it).
 */
export type HeaderStatusEffect = 'accepted' | 'challenged' | 'refused' | 'weaker'

/**
 * The device's side of authentication (binding.md §6): its credentials toward the party (CLCRED) go in every
 * message it sends over MQTT, made with the nonce the party's previous message gave it (for a session's first
 * message, the last one it stored).
 */
export class DeviceCredentials {
  #entry: AuthEntry | undefined
  #secret = ''
  #nonce: Uint8Array = new Uint8Array(0)
  /** No Chal moves us below this: the account's AAuthPref, else the scheme the session began with. */
  readonly #floor: number
  /** A nonce was stored in the tree (the engine saves such bookkeeping lazily). */
  nonceWritten = false
  readonly #tree: TreeOps
  readonly #account: Account | undefined
  readonly #deviceId: string

  constructor(tree: TreeOps, account: Account | undefined, deviceId: string) {
    this.#tree = tree
    this.#account = account
    this.#deviceId = deviceId
    this.#select(undefined)
    const begun = schemeOfAAuthType(account?.authPref ?? '') ?? schemeOfAAuthType(this.#entry?.type ?? '')
    this.#floor = begun === undefined ? 0 : strength(begun)
  }

  /** Our credentials for the next message: a Cred, or an HMAC signer; none without a CLCRED. */
  outbound(): OutboundAuth | undefined {
    const entry = this.#entry
    if (entry === undefined) return undefined
    return outboundAuth(schemeOfAAuthType(entry.type)!, entry.name ?? this.#deviceId, this.#secret, this.#nonce)
  }

  /**
   * Reads the party's Status for one of our messages. `trusted`: the message that carries it authenticated, so
   * a NextNonce in it is also stored for later sessions; an untrusted one (the answer to our first message,
   * which binding.md §6 lets us obey) is used for this session only (dm-reference.md §2.6).
   */
  onHeaderStatus(status: Status, trusted: boolean): HeaderStatusEffect {
    const code = status.data.trim()
    const chal = status.chal?.meta
    if (chal?.type !== undefined) {
      const asked = schemeOfMetaType(chal.type)
      if (asked === undefined || strength(asked) < this.#floor) return 'weaker'
    }
    const nonce = chal?.nextNonce !== undefined ? decodeNonce(chal.nextNonce) : undefined
    if (code === '401' || code === '407') {
      this.#select(chal?.type)
      if (nonce !== undefined) this.#useNonce(nonce, trusted)
      return 'challenged'
    }
    if (code === '212' || code === '200') {
      if (nonce !== undefined) this.#useNonce(nonce, trusted)
      return 'accepted'
    }
    return 'refused'
  }

  #select(chalType: string | undefined): void {
    const entries = this.#account?.clientEntries ?? []
    const entry = chooseEntry(entries, { type: chalType, pref: this.#account?.authPref }) ?? this.#entry
    if (entry === this.#entry) return
    this.#entry = entry
    if (entry === undefined) return
    this.#secret = entrySecret(this.#tree, entry)
    this.#nonce = entryNonce(this.#tree, entry)
  }

  #useNonce(nonce: Uint8Array, store: boolean): void {
    this.#nonce = nonce
    if (store && this.#entry !== undefined) {
      setNonce(this.#tree, this.#entry, nonce)
      this.nonceWritten = true
    }
  }
}
