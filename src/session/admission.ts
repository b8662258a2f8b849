/**
 * Admission (binding.md §6): who is this, may its message enter, and with which nonce. Over MQTT every message of
 * a session authenticates: with md5 its `Cred` is made with the nonce from the device's previous message to the
 * party in that session (for a session's first message, the last nonce the device gave it), with HMAC its
 * `x-syncml-hmac` likewise. A nonce is single-use: once a `Cred` made with it verifies, it is spent, whether or
 * not a reply ever carries the next one. A message that does not authenticate changes nothing here: not a
 * stored nonce, not what the session accepts next; it gets at most a rate-limited refusal, whose `Chal` nonce
 * lives in memory for that refused session only.
 */
import { encodeNonce } from '../auth/nonce.ts'
import { AUTH_TYPE } from '../codec/gwmo.ts'
import type { Chal, Command, SyncMLMessage } from '../codec/syncml-model.ts'
import { isWbxmlPayload } from '../codec/syncml.ts'
import { AUTH_FAILURE, type AuthFailure } from '../errors.ts'
import type { InboundMessage, OutboundMessage } from './port.ts'
import { entryNonce, entrySecret, setNonce, type Account, type AuthEntry } from '../tree/accounts.ts'
import { challenge, checkParty, chooseEntry, HMAC_PROPERTY, schemeOfAAuthType, schemeOfMetaType, usesNonce, type AuthScheme } from './credentials.ts'
import type { EngineCore } from './engine.ts'
import { composeMessage } from './outbound.ts'
import { BoundedMap } from '../rate-limit.ts'
import { makeStatus, ReplyBuilder, type ReplyEntry } from './reply.ts'

export type Verdict =
  | { ok: true; scheme: AuthScheme; entry: AuthEntry; nonce: Uint8Array }
  /** `scheme` undefined: the account holds no credential the party could use, so a refusal carries no Chal. */
  | { ok: false; failure: AuthFailure; scheme: AuthScheme | undefined }

/**
 * The account flag (agent state) that records, per SRVCRED entry URI, the nonce last spent with it while that
 * nonce is still the stored one: it stays stored (the DM Notification digest is made with it, binding.md §6),
 * but a `Cred` made with it is never accepted again. A fresh nonce stored for the entry replaces the record.
 */
const SPENT_NONCES = 'spentNonces'

/** What a gate works with: the engine's tree, state and nonce source. */
type GateDeps = Pick<EngineCore, 'tree' | 'state' | 'nonces'>

/** One party's authentication within one session: what it may authenticate with next, and the spending of it. */
export class PartyGate {
  #authenticated = false
  #scheme: AuthScheme | undefined
  /** The entry the party authenticated with; HMAC, once in use, stays for the whole session (DM Security 1.2, 5.1.3). */
  #entry: AuthEntry | undefined
  /** The nonce handed out in our last message; undefined: the stored one (the session's first message). */
  #handedOut: Uint8Array | undefined
  /** After a spend and before the next nonce is handed out, nothing is accepted. */
  #spent = false
  /**
   * The nonces of our last refusals in this session, accepted too, in memory only: a party whose message went twice
   * answers the first refusal while the second is on its way.
   */
  #refusals: Uint8Array[]
  /** The tree or the agent state took bookkeeping (nonces) that the engine saves lazily. */
  bookkeeping = false

  constructor(
    private readonly deps: GateDeps,
    private readonly party: string,
    private readonly account: Account | undefined,
    refusalNonces: readonly Uint8Array[] = [],
  ) {
    this.#refusals = [...refusalNonces]
  }

  /** The party authenticated at least once in this session. */
  get authenticated(): boolean {
    return this.#authenticated
  }

  get scheme(): AuthScheme | undefined {
    return this.#scheme
  }

  /** The nonces of the last refusals, for the engine to remember with a refused push. */
  get refusalNonces(): readonly Uint8Array[] {
    return this.#refusals
  }

  /** Checks one inbound message. No side effect: only `spend` changes anything. */
  verify(msg: SyncMLMessage, payload: Uint8Array, properties: Record<string, string>): Verdict {
    const hmacHeader = properties[HMAC_PROPERTY]
    const cred = msg.hdr.cred
    // The entry the party's credentials are of (an account may hold several SRVCRED entries).
    const used = this.#scheme === 'hmac' || hmacHeader !== undefined ? AUTH_TYPE.HMAC : cred ? (cred.meta?.type ?? AUTH_TYPE.BASIC) : undefined
    const entry = this.#scheme === 'hmac' ? this.#entry : chooseEntry(this.account?.serverEntries ?? [], { type: used })
    if (entry === undefined) {
      return { ok: false, failure: cred || hmacHeader ? AUTH_FAILURE.NO_CREDENTIAL : AUTH_FAILURE.MISSING, scheme: undefined }
    }
    const scheme = schemeOfAAuthType(entry.type)!
    const check = { scheme, username: entry.name ?? this.party, secret: entrySecret(this.deps.tree, entry), cred, hmacHeader, payload }
    // Missing or mistyped credentials are told apart from wrong ones even when no nonce is acceptable now.
    if (scheme === 'hmac' ? hmacHeader === undefined : cred === undefined) return { ok: false, failure: AUTH_FAILURE.MISSING, scheme }
    if (scheme !== 'hmac' && schemeOfMetaType(cred?.meta?.type) !== scheme) return { ok: false, failure: AUTH_FAILURE.OTHER_SCHEME, scheme }
    for (const nonce of this.#acceptable(entry, scheme)) {
      if (checkParty({ ...check, nonce }).ok) return { ok: true, scheme, entry, nonce }
    }
    return { ok: false, failure: AUTH_FAILURE.MISMATCH, scheme }
  }

  /**
   * Admits a verified message: its nonce is spent (binding.md §6), nothing is accepted until our next message
   * hands out a fresh one. The SyncHdr Status code: 212 the first time in a session with md5 or basic, else 200
   * (HMAC checks every message, DM Security 1.2, 5.1.3).
   */
  spend(verdict: Extract<Verdict, { ok: true }>): number {
    const first = !this.#authenticated
    this.#authenticated = true
    this.#scheme = verdict.scheme
    this.#entry = verdict.entry
    if (usesNonce(verdict.scheme)) {
      this.#spent = true
      this.#refusals = []
      // The nonce the party proved it holds is the last one it got from us: a refusal's becomes the stored one too,
      // so that the party's next DM Notification digest (made with it) verifies. Stored, and spent.
      const { tree, state } = this.deps
      if (!sameBytes(entryNonce(tree, verdict.entry), verdict.nonce)) setNonce(tree, verdict.entry, verdict.nonce)
      state.setAccountFlag(this.party, SPENT_NONCES, { ...spentNonces(state, this.party), [verdict.entry.uri]: encodeNonce(verdict.nonce) })
      this.bookkeeping = true
    }
    return first && verdict.scheme !== 'hmac' ? 212 : 200
  }

  /**
   * The Chal of our next message to an authenticated party: a fresh nonce, stored for the party's next session
   * and the only one its next message of this one may use. None for basic, which uses no nonce.
   */
  async nextChallenge(): Promise<Chal | undefined> {
    const scheme = this.#scheme
    const entry = this.#entry
    if (scheme === undefined || entry === undefined || !usesNonce(scheme)) return undefined
    const fresh = await this.deps.nonces.issue()
    setNonce(this.deps.tree, entry, fresh)
    const { state } = this.deps
    const spent = spentNonces(state, this.party)
    if (spent[entry.uri] !== undefined) {
      delete spent[entry.uri]
      state.setAccountFlag(this.party, SPENT_NONCES, Object.keys(spent).length > 0 ? spent : undefined)
    }
    this.bookkeeping = true
    this.#handedOut = fresh
    this.#spent = false
    return challenge(scheme, fresh)
  }

  /**
   * The Chal of a refusal (OMA DM Protocol 1.2, 9.3: a 401/407 MUST carry one): a fresh nonce kept in memory for
   * this session only, never stored, so a forged message cannot move the nonce the real party holds. None when
   * nothing the party could send would authenticate it.
   */
  async refusalChallenge(verdict: Extract<Verdict, { ok: false }>): Promise<Chal | undefined> {
    if (verdict.scheme === undefined) return undefined
    if (!usesNonce(verdict.scheme)) return challenge(verdict.scheme, undefined)
    const nonce = await this.deps.nonces.issue()
    this.#refusals = [...this.#refusals.slice(1 - MAX_REFUSAL_NONCES), nonce]
    return challenge(verdict.scheme, nonce)
  }

  /** The nonces a message may be made with now, the most likely first. */
  #acceptable(entry: AuthEntry, scheme: AuthScheme): Uint8Array[] {
    if (!usesNonce(scheme)) return [EMPTY]
    const out: Uint8Array[] = []
    if (this.#handedOut !== undefined) {
      if (!this.#spent) out.push(this.#handedOut)
    } else if (!this.#spent) {
      const stored = entryNonce(this.deps.tree, entry)
      if (spentNonces(this.deps.state, this.party)[entry.uri] !== encodeNonce(stored)) out.push(stored)
    }
    out.push(...this.#refusals)
    return out
  }
}

const EMPTY = new Uint8Array(0)
/** Refusal nonces a session (or a refused push) keeps: a few, so that a flood of refusals keeps no more. */
const MAX_REFUSAL_NONCES = 3

function spentNonces(state: EngineCore['state'], party: string): Record<string, string> {
  const value = state.accountFlag(party, SPENT_NONCES)
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? { ...(value as Record<string, string>) } : {}
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, k) => byte === b[k])
}

/** A pushed message the device refused, remembered so that the party's answer goes on in the same session. */
export interface RefusedPush {
  sessionId: string
  /** The Chal nonces of its last refusals: accepted for that SessionID only. */
  nonces: readonly Uint8Array[]
  /** Our MsgID of the refusal: the session continues after it (OMA DM Protocol 1.2, 9.3). */
  lastMsgId: number
  at: number
}

/**
 * The engine's side of admission: the gates of new sessions, and the answers to pushed messages that do not
 * authenticate. A refused push starts no session and takes no party's place in line; at most one refusal is
 * remembered per party, in a bounded map, so a flood keeps no more state than that.
 */
export class Admission {
  readonly #refused: BoundedMap<string, RefusedPush>

  constructor(private readonly engine: EngineCore) {
    this.#refused = new BoundedMap(engine.constants.maxTrackedParties)
  }

  /** The refusal this SessionID of the party continues from, if it is recent. */
  refusedPush(party: string, sessionId: string): RefusedPush | undefined {
    const refused = this.#refused.get(party)
    const horizon = this.engine.clock.now() - this.engine.constants.endedSessionMemoryMs
    return refused !== undefined && refused.sessionId === sessionId && refused.at >= horizon ? refused : undefined
  }

  /** The gate of a new session with the party. */
  gate(party: string, account: Account | undefined, sessionId: string): PartyGate {
    return new PartyGate(this.engine, party, account, this.refusedPush(party, sessionId)?.nonces)
  }

  /**
   * Answers a pushed message that did not authenticate with a `refusal`, at most a few times a second per party.
   * Nothing else happens: no command runs, no nonce is stored, no session starts.
   */
  async refusePush(party: string, account: Account | undefined, msg: SyncMLMessage, inbound: InboundMessage, gate: PartyGate, verdict: Extract<Verdict, { ok: false }>): Promise<void> {
    const { engine } = this
    const now = engine.clock.now()
    const fields = { party, sessionId: msg.hdr.sessionId, code: verdict.failure.code }
    if (!engine.authFailureAnswers.take(party, now)) {
      engine.quietLog.note(`${party}\u0000refusals`, now, (suppressed) =>
        engine.logger.warn('answers to failed authentication dropped (rate limit)', { ...fields, suppressed }))
      return
    }
    engine.quietLog.note(`${party}\u0000auth`, now, (suppressed) => engine.logger.warn('authentication failed', { ...fields, suppressed }))
    const chal = await gate.refusalChallenge(verdict)
    const msgId = (this.refusedPush(party, msg.hdr.sessionId)?.lastMsgId ?? 0) + 1
    const message = refusal(engine, { party, account, msg, inbound, msgId, chal, code: verdict.failure.status })
    this.#refused.set(party, { sessionId: msg.hdr.sessionId, nonces: gate.refusalNonces, lastMsgId: msgId, at: now })
    await engine.send(message).catch((error: unknown) =>
      engine.quietLog.note(`${party}\u0000send`, now, (suppressed) => engine.logger.warn('send failed', { party, error, suppressed })))
  }

  /** The party's answer to a refusal was admitted: that refusal is done with. */
  settled(party: string, sessionId: string): void {
    if (this.#refused.get(party)?.sessionId === sessionId) this.#refused.delete(party)
  }
}

/**
 * A refusal (binding.md §6; DM Protocol 1.2, 9.3): `401`/`407` with the `Chal` on the message's SyncHdr, the same
 * code for every command ("the response contains only Status commands"), and no `Cred` of ours, which would hand
 * a forger a credential made with the real party's nonce. The party sends its message again with a `Cred` for
 * the Chal's nonce and the next MsgID. The Statuses of the refused message are not read: they cannot challenge us.
 */
export function refusal(
  engine: Pick<EngineCore, 'constants' | 'deviceId'>,
  input: { party: string; account: Account | undefined; msg: SyncMLMessage; inbound: InboundMessage; msgId: number; chal: Chal | undefined; code: number },
): OutboundMessage {
  const { msg } = input
  const reply = new ReplyBuilder(msg.hdr.msgId)
  denyCommands(msg.body, reply, input.code)
  const headerStatus = makeStatus(msg.hdr.msgId, '0', 'SyncHdr', input.code, {
    targetRef: msg.hdr.target.locUri,
    sourceRef: msg.hdr.source.locUri,
    chal: input.chal,
  })
  const compose = (entries: ReplyEntry[]) => composeMessage({
    constants: engine.constants,
    deviceId: engine.deviceId,
    party: input.party,
    account: input.account,
    sessionId: msg.hdr.sessionId,
    msgId: input.msgId,
    encoding: isWbxmlPayload(input.inbound.payload, input.inbound.contentType) ? 'wbxml' : 'xml',
    auth: undefined,
    headerStatus,
    entries,
    partyMaxMsgSize: msg.hdr.meta?.maxMsgSize,
  })
  // binding.md §11: a refusal of a message of many commands, too large with a Status for each, is its SyncHdr's
  // alone (the code is the same for all, and nothing of them ran).
  const composed = compose(reply.entries)
  return composed.oversize ? compose([]).message : composed.message
}

/**
 * The Statuses of a refusal: the same code (401/407) for every command, none of them run. The refused message's
 * own Statuses get none (they are never answered).
 */
function denyCommands(body: Command[], reply: ReplyBuilder, code: number): void {
  for (const command of body) if (command.kind !== 'Status') reply.status(command, code)
}
