import { decodeNonce } from '../auth/nonce.ts'
import { AUTH_TYPE } from '../codec/gwmo.ts'
import type { Chal, Status, SyncMLMessage } from '../codec/syncml-model.ts'
import { entryNonce, entrySecret, setNonce, type Account, type AuthEntry } from '../tree/accounts.ts'
import type { TreeOps } from '../tree/types.ts'
import {
  challenge,
  checkParty,
  chooseEntry,
  HMAC_PROPERTY,
  outboundAuth,
  schemeOfAAuthType,
  usesNonce,
  type AuthScheme,
  type OutboundAuth,
  type PartyCheck,
} from './credentials.ts'
import type { NonceIssuer } from './nonces.ts'

/**
 * Authentication both ways within one session (OMA DM Protocol 1.2, 9; DM Security 1.2; binding.md §6).
 * Credentials are read when the session starts: changed AAuthName or AAuthSecret apply from the next session.
 */

export type PartyVerdict =
  | PartyCheck
  /** Authenticated earlier in this session with a scheme that checks once (md5, basic). */
  | { ok: true; already: true }
  /** An account without SRVCRED: nothing the party sends could authenticate it, so no Chal goes with the refusal. */
  | { ok: false; code: 401 | 407; scheme: undefined; reason: string }

/** The party's side: checks its credentials against SRVCRED and hands out its nonces. */
export class PartyAuthenticator {
  authenticated = false
  scheme: AuthScheme | undefined
  /** The nonce the party authenticates with in this session (a 212 nonce serves from the next session on). */
  #nonce: Uint8Array | undefined
  #entry: AuthEntry | undefined
  /** Whether a nonce was written to the tree (the manager flushes such bookkeeping lazily). */
  nonceWritten = false
  readonly #tree: TreeOps
  readonly #nonces: NonceIssuer
  readonly #party: string
  readonly #account: Account | undefined

  constructor(tree: TreeOps, nonces: NonceIssuer, party: string, account: Account | undefined) {
    this.#tree = tree
    this.#nonces = nonces
    this.#party = party
    this.#account = account
  }

  /** Checks one inbound message; no side effect (a failure is answered, and costs a nonce, only if the caller says). */
  verify(msg: SyncMLMessage, payload: Uint8Array, properties: Record<string, string>): PartyVerdict {
    if (this.authenticated && this.scheme !== 'hmac') return { ok: true, already: true }
    const hmacHeader = properties[HMAC_PROPERTY]
    const cred = msg.hdr.cred
    // The entry the party's credentials are of (an account may hold several SRVCRED entries); HMAC, once in
    // use, stays for the whole session (DM Security 1.2, 5.1.3).
    const used = this.scheme === 'hmac' || hmacHeader !== undefined ? AUTH_TYPE.HMAC : cred ? (cred.meta?.type ?? AUTH_TYPE.BASIC) : undefined
    const entry = this.scheme === 'hmac' ? this.#entry : chooseEntry(this.#account?.serverEntries ?? [], { type: used })
    if (entry === undefined) {
      return { ok: false, code: cred || hmacHeader ? 401 : 407, scheme: undefined, reason: 'no SRVCRED for this party' }
    }
    const scheme = schemeOfAAuthType(entry.type)!
    this.#entry = entry
    this.#nonce ??= entryNonce(this.#tree, entry)
    return checkParty({
      scheme,
      username: entry.name ?? this.#party,
      secret: entrySecret(this.#tree, entry),
      nonce: this.#nonce,
      cred,
      hmacHeader,
      payload,
    })
  }

  /**
   * After a successful check: the SyncHdr Status code, and whether a fresh nonce is due with it. The first time
   * in a session, 212 with a fresh NextNonce for the next session (binding.md §6); with HMAC, 200 and a fresh
   * nonce for every message (DM Security 1.2, 5.1.3). The nonce itself comes from `freshChallenge`, once the
   * reply that carries it is sure to leave.
   */
  accept(verdict: Extract<PartyVerdict, { ok: true }>): { code: number; nonceDue: boolean } {
    if ('already' in verdict) return { code: 200, nonceDue: false }
    const first = !this.authenticated
    this.authenticated = true
    this.scheme = verdict.scheme
    if (verdict.scheme === 'hmac') return { code: 200, nonceDue: true }
    if (!first) return { code: 200, nonceDue: false }
    return { code: 212, nonceDue: usesNonce(verdict.scheme) }
  }

  /**
   * The Chal with the fresh nonce `accept` said is due, issued and stored now. Only a reply that leaves may carry
   * it: a nonce stored but never handed out leaves the party holding one the device no longer expects.
   */
  async freshChallenge(): Promise<Chal> {
    const scheme = this.scheme ?? 'md5'
    const fresh = await this.#rotate()
    // HMAC: the party's next message of this session already uses it; md5: it serves from the next session on.
    if (scheme === 'hmac') this.#nonce = fresh
    return challenge(scheme, fresh)
  }

  /**
   * The Chal for a failure the device answers (OMA DM Protocol 1.2, 9.3: a 401/407 MUST carry one): with a
   * new nonce when `mayRotate` allows it (at most once a second per party, binding.md §6), else the current one.
   */
  async failureChallenge(verdict: Extract<PartyVerdict, { ok: false }>, mayRotate: () => boolean): Promise<Chal | undefined> {
    if (verdict.scheme === undefined) return undefined
    if (!usesNonce(verdict.scheme)) return challenge(verdict.scheme, undefined)
    if (mayRotate()) this.#nonce = await this.#rotate()
    return challenge(verdict.scheme, this.#nonce)
  }

  async #rotate(): Promise<Uint8Array> {
    const fresh = await this.#nonces.issue()
    if (this.#entry !== undefined) {
      setNonce(this.#tree, this.#entry, fresh)
      this.nonceWritten = true
    }
    return fresh
  }
}

export type HeaderStatusEffect = 'accepted' | 'challenged' | 'refused'

/** The device's side: its credentials toward the party (CLCRED), and what the party's SyncHdr Status says. */
export class DeviceCredentials {
  #entry: AuthEntry | undefined
  #secret = ''
  #nonce: Uint8Array = new Uint8Array(0)
  /** Cred goes with every message until a 212 (DM Protocol 1.2, 9.3: after 200 the same credentials again). */
  #sendCred = true
  nonceWritten = false
  readonly #tree: TreeOps
  readonly #account: Account | undefined
  readonly #deviceId: string

  constructor(tree: TreeOps, account: Account | undefined, deviceId: string) {
    this.#tree = tree
    this.#account = account
    this.#deviceId = deviceId
    this.#select(undefined)
  }

  /** What our next message carries: a Cred, an HMAC signer, or nothing (no CLCRED, or no longer needed). */
  outbound(): OutboundAuth | undefined {
    const entry = this.#entry
    if (entry === undefined) return undefined
    const scheme = schemeOfAAuthType(entry.type)!
    if (!this.#sendCred && scheme !== 'hmac') return undefined
    return outboundAuth(scheme, entry.name ?? this.#deviceId, this.#secret, this.#nonce)
  }

  /**
   * Reads the party's Status for our SyncHdr. A NextNonce is used from then on within the session; it is
   * stored for later sessions only when the party authenticated itself (dm-reference.md §2.6: a nonce from an
   * unauthenticated peer is used, never stored).
   */
  onHeaderStatus(status: Status, partyAuthenticated: boolean): HeaderStatusEffect {
    const code = status.data.trim()
    const chal = status.chal?.meta
    const nonce = chal?.nextNonce !== undefined ? decodeNonce(chal.nextNonce) : undefined
    if (code === '401' || code === '407') {
      this.#select(chal?.type)
      if (nonce !== undefined) this.#useNonce(nonce, partyAuthenticated)
      this.#sendCred = true
      return 'challenged'
    }
    if (code === '212' || code === '200') {
      if (code === '212') this.#sendCred = false
      if (nonce !== undefined) this.#useNonce(nonce, partyAuthenticated)
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
