import { NONCE_BYTES } from '../auth/nonce.ts'
import { ALERT } from '../codec/gwmo.ts'
import type { Status, SyncMLMessage } from '../codec/syncml-model.ts'
import { isWbxmlPayload, type MessageEncoding } from '../codec/syncml.ts'
import { TransportError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { InboundMessage, OutboundMessage } from './port.ts'
import type { Account } from '../tree/accounts.ts'
import { refusal, type PartyGate, type Verdict } from './admission.ts'
import type { GenericAlertSpec } from './agent-state.ts'
import { messageLimit } from './constants.ts'
import { challenge, usesNonce, type OutboundAuth } from './credentials.ts'
import { DeviceCredentials } from './device-credentials.ts'
import type { Engine } from './engine.ts'
import { composeMessage, surelyFits, type ComposeInput } from './outbound.ts'
import { alertCommand, genericAlertCommand, package1 } from './package1.ts'
import { makeStatus, ReplyBuilder, type ReplyEntry } from './reply.ts'
import { ReplyCache } from './reply-cache.ts'
import { Retransmitter, type TimeoutAction } from './retransmit.ts'
import { runCommands } from './run-commands.ts'
import { Serial } from './serial.ts'
import { ENTITY_TOO_LARGE, mustStay } from './size.ts'

export type SessionOutcome = 'completed' | 'aborted' | 'failed' | 'rejected' | 'stopped'

export interface SessionOptions {
  party: string
  sessionId: string
  initiator: 'device' | 'party'
  /** The account the device holds for the party; a party without one only runs alerts admitted unauthenticated. */
  account: Account | undefined
  /** No session with this party has completed before. */
  first: boolean
  /** Our last MsgID in this SessionID so far: the party goes on after a message the device refused. */
  continuesAfter?: number | undefined
}

/** What an ended session leaves behind, so a late duplicate is answered from it (binding.md §3). */
export interface EndedSession {
  sessionId: string
  replies: ReplyCache
  /** When it ended. */
  at: number
}

/**
 * One DM session with one party (OMA DM Protocol 1.2, 8; binding.md §3, §6): its SessionID, our MsgIDs, the
 * party's admitted messages, authentication both ways on every message, the last message we sent (sent again,
 * same MsgID, when no answer comes in time, and given again for a duplicate of the message it answered), and
 * the Generic Alerts in flight.
 */
export class Session {
  readonly party: string
  readonly sessionId: string
  readonly initiator: 'device' | 'party'
  readonly done: Promise<SessionOutcome>
  #resolveDone!: (outcome: SessionOutcome) => void
  readonly #engine: Engine
  /** The engine's logger bound to this party and session: every line names both. */
  readonly #log: Logger
  readonly #account: Account | undefined
  readonly #first: boolean
  readonly #gate: PartyGate
  readonly #device: DeviceCredentials
  #sentMsgId: number
  /** Our MsgID of the last message that expects an answer; a Status for our SyncHdr names it or a later one. */
  #answerableFrom = 0
  readonly #replies = new ReplyCache()
  #lastSent: OutboundMessage | undefined
  readonly #retransmit: Retransmitter
  #package1Resends = 0
  /** What our last message held besides the Status for the party's SyncHdr: sent again if the party refuses it. */
  #lastEntries: ReplyEntry[] = []
  #challenged = false
  #encoding: MessageEncoding
  #partyMaxMsgSize: number | undefined
  /** binding.md §10: the party is reached over HTTP; its answers come back as the responses to our POSTs. */
  readonly #http: boolean
  /** The RespURI of the party's last admitted message (HTTP). */
  #respUri: string | undefined
  /** Over HTTP, the party accepted our credentials for the session (212): md5 and basic need not go again. */
  #credAccepted = false
  /** `<our MsgID>:<CmdID>` of each Generic Alert sent → its id in the persisted queue. */
  readonly #alertRefs = new Map<string, string>()
  /** A message of the party ran, authenticated or admitted unauthenticated. */
  #admittedOnce = false
  #ended = false
  /** The session's inbound messages and timeouts, handled one at a time in arrival order. */
  readonly #serial = new Serial()

  constructor(engine: Engine, options: SessionOptions) {
    this.#engine = engine
    this.#log = engine.logger.child({ party: options.party, sessionId: options.sessionId })
    this.party = options.party
    this.sessionId = options.sessionId
    this.initiator = options.initiator
    this.#account = options.account
    this.#http = options.account?.httpUrl !== undefined
    this.#encoding = options.account?.encoding ?? 'xml'
    this.#first = options.first
    this.#sentMsgId = options.continuesAfter ?? 0
    this.#gate = engine.admission.gate(options.party, options.account, options.sessionId)
    this.#device = new DeviceCredentials(engine.tree, options.account, engine.deviceId)
    this.done = new Promise((resolve) => (this.#resolveDone = resolve))
    const { clock, constants } = engine
    this.#retransmit = new Retransmitter(clock, constants.sessionTimeoutMs, constants.retransmitCount, (action) => {
      void this.#serially(() => this.#timedOut(action))
    }, constants.lostResendBaseMs)
    // A pushed session exists only once a message of it is admitted: a flood of refused messages logs no sessions.
    if (this.initiator === 'device') this.#logStart()
  }

  get ended(): boolean {
    return this.#ended
  }

  /** The party is reached over HTTP (binding.md §10): only the responses to our own POSTs belong to the session. */
  get overHttp(): boolean {
    return this.#http
  }

  /** Package 1 of a session the device opens: Alert 1201 or 1200, DevInfo, pending Generic Alerts, Final. */
  start(alert: typeof ALERT.CLIENT_INITIATED_MGMT | typeof ALERT.SERVER_INITIATED_MGMT): Promise<void> {
    return this.#serially(async () => {
      const entries = this.#package1(alert)
      await this.#transmit(this.#compose(undefined, entries), entries)
    })
  }

  /**
   * Handles one inbound message of this session, after the ones before it. False when the session had ended
   * by the time the message's turn came: the caller routes it afresh.
   */
  async deliver(msg: SyncMLMessage, inbound: InboundMessage): Promise<boolean> {
    let handled = false
    await this.#serially(() => {
      handled = true
      return this.#process(msg, inbound)
    })
    return handled
  }

  /** Runs `task` after the messages of this session received so far and before any received later, ended or not. */
  inTurn<T>(task: () => T): Promise<T> {
    return this.#serial.run(task)
  }

  /**
   * The transport is connected again: our last message, or the party's answer to it, may have been lost with the
   * broker, or have reached it before the party was listening again. With no answer within `reconnectResendMs`
   * the message is sent again then, not only at the session timeout.
   */
  reconnected(): void {
    if (!this.#ended) this.#retransmit.hurry(this.#engine.constants.reconnectResendMs)
  }

  /** Ends the session without a word (the engine is stopping). */
  stop(): void {
    this.#end('stopped')
  }

  /** The record kept after the end. */
  remains(): EndedSession {
    return { sessionId: this.sessionId, replies: this.#replies, at: this.#engine.clock.now() }
  }

  /**
   * Ends the session if our last message held nothing but Status: the session may be over, and waits only in
   * case the party goes on. A new request for the party ends it at once.
   */
  finishIfClosing(): void {
    if (this.#retransmit.closing) this.#end('completed')
  }

  /** Runs a task after the session's earlier ones, unless the session has ended; never rejects. */
  #serially(task: () => Promise<void>): Promise<void> {
    return this.#serial.run(() => (this.#ended ? undefined : task())).catch((error: unknown) => {
      this.#log.error('session error', { error })
      this.#end('failed')
    })
  }

  async #process(msg: SyncMLMessage, inbound: InboundMessage): Promise<void> {
    const log = this.#log
    const msgId = Number(msg.hdr.msgId)
    if (!Number.isSafeInteger(msgId) || msgId < 1) {
      // Before authentication: anyone on the broker can repeat it.
      this.#quietly('msgid', (suppressed) => log.warn('message with an unusable MsgID dropped', { suppressed }))
      return
    }
    // binding.md §3: a duplicate is answered again from the same state, never executed twice.
    const repeat = this.#replies.repeat(msgId, inbound.payload)
    if (repeat !== undefined) {
      if (repeat === 'exhausted') return log.debug('duplicate message not answered again', { msgId })
      log.debug('duplicate message answered again', { msgId })
      return this.#handOver(repeat)
    }

    // Authentication first: nothing of a message that does not authenticate runs or changes (binding.md §6).
    const verdict = this.#gate.verify(msg, inbound.payload, inbound.properties)
    const byConnection = !verdict.ok && this.#onOwnConnection(inbound)
    const admitted = verdict.ok || byConnection || this.#engine.alerts.admitsMessage(msg.body, { serverId: this.party, hasAccount: this.#account !== undefined })
    if (!admitted) return this.#refuse(msg, inbound, verdict)
    const last = this.#replies.lastMsgId
    if (last !== undefined && msgId <= last) {
      log.info('old message ignored', { msgId })
      return
    }
    const headerCode = verdict.ok ? this.#gate.spend(verdict) : 200
    if (verdict.ok) this.#engine.admission.settled(this.party, this.sessionId)
    this.#replies.admitted(msgId, inbound.payload)
    this.#retransmit.cancel()
    this.#encoding = isWbxmlPayload(inbound.payload, inbound.contentType) ? 'wbxml' : 'xml'
    this.#partyMaxMsgSize = msg.hdr.meta?.maxMsgSize ?? this.#partyMaxMsgSize
    if (this.#http && msg.hdr.respUri !== undefined) this.#respUri = msg.hdr.respUri
    if (!this.#admittedOnce) {
      this.#admittedOnce = true
      if (this.initiator === 'party') this.#logStart()
    }
    await this.#answer(msg, verdict.ok || byConnection, headerCode, byConnection)
  }

  /**
   * binding.md §6, §10 (OMA DM's own rule over HTTP): once the party has authenticated in this session, the
   * response to our own POST needs no credentials of its own; the connection (and its TLS) carries the session.
   * The HTTP binding alone marks a message as such a response, and only for the party and session it POSTed for:
   * nothing that comes through a broker ever is. HMAC still covers every message (DM Security 1.2, 5.1.3).
   */
  #onOwnConnection(inbound: InboundMessage): boolean {
    const exchange = inbound.exchange
    return this.#http && exchange !== undefined && exchange.party === this.party && exchange.sessionId === this.sessionId &&
      this.#gate.authenticated && this.#gate.scheme !== 'hmac'
  }

  /**
   * Runs an admitted message's commands and answers it (or ends the session, as the message says). `byConnection`:
   * admitted as the response to our POST without credentials of its own, so no nonce was spent and none is handed out.
   */
  async #answer(msg: SyncMLMessage, authenticated: boolean, headerCode: number, byConnection = false): Promise<void> {
    const log = this.#log
    const reply = new ReplyBuilder(msg.hdr.msgId)
    /** Ids of the alerts this message's commands put in the party's queue. */
    const queued: string[] = []
    const ran = await runCommands(this.#engine, msg.body, {
      reply,
      logger: log,
      party: { serverId: this.party, hasAccount: this.#account !== undefined, authenticated },
      session: { sessionId: this.sessionId, initiator: this.initiator, msgId: msg.hdr.msgId, first: this.#first },
      consumeStatus: (status) => this.#consumeStatus(status, authenticated),
      sendGenericAlert: (spec, into) => this.#sendGenericAlert(spec, into, queued),
      fits: (entries) => this.#answerFits(msg, entries),
    })
    if (ran.tooLarge) return this.#tooLarge(msg, queued)
    const followUps = ran.followUps
    if (ran.aborted) {
      this.#settle()
      log.info('session aborted by the party')
      this.#end('aborted')
      this.#runFollowUps(followUps)
      return
    }

    // The party challenged our credentials: what it refused goes again with new ones (DM Protocol 1.2, 9.3):
    // Package 1 (with the Alert it began with), or our answer to the party's commands, which never run twice.
    const own: ReplyEntry[] = []
    if (this.#challenged) {
      this.#challenged = false
      if (++this.#package1Resends > this.#engine.constants.maxPackage1Resends) {
        this.#quietly('refusing', (suppressed) => log.warn('party keeps refusing our credentials', { suppressed }))
        this.#settle()
        this.#end('failed')
        this.#runFollowUps(followUps)
        return
      }
      own.push(...this.#lastEntries)
    }

    // binding.md §3: a message with Final that holds nothing but Status ends the session; no reply is sent (the
    // nonce it spent is not replaced in a message: the party's next session begins with one challenge, §6).
    const holdsCommands = msg.body.some((c) => c.kind !== 'Status')
    if (msg.final && !holdsCommands && own.length === 0) {
      this.#settle()
      this.#end('completed')
      return
    }
    // A message without Final is one of several in its package: ask for the next one (DM Protocol 1.2, 8.6).
    if (!msg.final) own.push({ kind: 'command', command: alertCommand(ALERT.NEXT_MESSAGE) })

    // binding.md §6: every message of ours hands the party the nonce its next message must use (over HTTP, a message
    // admitted by its connection spent none: the nonce handed out last stays the one to use next).
    const chal = byConnection ? undefined : await this.#gate.nextChallenge()
    const headerStatus = makeStatus(msg.hdr.msgId, '0', 'SyncHdr', headerCode, {
      targetRef: msg.hdr.target.locUri,
      sourceRef: msg.hdr.source.locUri,
      chal,
    })
    const entries = [...reply.entries, ...own]
    const out = this.#compose(headerStatus, entries)
    this.#settle()
    this.#replies.answered(out)
    // binding.md §3: our message holding nothing but Status (with Final) may end the session; the party still
    // may go on with more commands, so the session stays open for them until the timeout, sending nothing again.
    await this.#transmit(out, entries, reply.onlyStatuses && own.length === 0)
    this.#runFollowUps(followUps)
  }

  /**
   * Whether our answer holding `entries` can fit the message to the party (binding.md §11) once what may give way
   * has (`fitToSize`): the Statuses and our own commands alone, under a SyncHdr Status as large as the real one
   * will be (the same refs, a Chal with a nonce of the same length). No encoding when it surely fits.
   */
  #answerFits(msg: SyncMLMessage, entries: ReplyEntry[]): boolean {
    const own: ReplyEntry[] = this.#challenged ? [...this.#lastEntries] : []
    if (!msg.final) own.push({ kind: 'command', command: alertCommand(ALERT.NEXT_MESSAGE) })
    const staying = mustStay([...entries, ...own])
    const limit = messageLimit(this.#engine.constants, this.#partyMaxMsgSize)
    const scheme = this.#gate.scheme
    const chal = scheme !== undefined && usesNonce(scheme) ? challenge(scheme, new Uint8Array(NONCE_BYTES)) : undefined
    const headerStatus = makeStatus(msg.hdr.msgId, '0', 'SyncHdr', 200, { targetRef: msg.hdr.target.locUri, sourceRef: msg.hdr.source.locUri, chal })
    const input = this.#composeInput(headerStatus, staying)
    if (surelyFits(input, limit)) return true
    return !composeMessage(input).oversize
  }

  /**
   * binding.md §11: a message whose answer cannot fit even with its Statuses alone (a party sent more commands
   * than their Statuses can answer in one message) is refused whole: nothing of it was committed, the alerts it
   * queued are taken out again, and the answer is a Status 413 (Request entity too large) for its SyncHdr alone,
   * with a Chal. The party sends its commands again in smaller messages. Splitting an answer over several
   * messages (DM 1.2, 8.6) is not supported.
   */
  async #tooLarge(msg: SyncMLMessage, queued: string[]): Promise<void> {
    const { state, quietLog, clock } = this.#engine
    let removed = false
    for (const id of queued) removed = state.removeAlert(this.party, id) || removed
    if (removed) void this.#engine.saveState()
    const limit = messageLimit(this.#engine.constants, this.#partyMaxMsgSize)
    quietLog.note(`${this.party}\u0000too-large`, clock.now(), (suppressed) =>
      this.#log.warn('message refused: its Statuses alone would not fit one message', { msgId: msg.hdr.msgId, commands: msg.body.length, limit, suppressed }))
    const chal = await this.#gate.nextChallenge()
    const headerStatus = makeStatus(msg.hdr.msgId, '0', 'SyncHdr', ENTITY_TOO_LARGE, {
      targetRef: msg.hdr.target.locUri,
      sourceRef: msg.hdr.source.locUri,
      chal,
    })
    const out = this.#compose(headerStatus, [])
    this.#settle()
    this.#replies.answered(out)
    // Our own commands the party had challenged (not sent in this answer) stay the ones to send again.
    await this.#transmit(out, this.#challenged ? this.#lastEntries : [], true)
  }

  /**
   * A message of this session that does not authenticate (binding.md §6): it executes nothing and changes
   * nothing of the session (not its MsgIDs, its duplicate cache, its timers or a stored nonce).
   * - In a session the party has authenticated in, it is someone else's, or stale: never answered.
   * - The first message of a pushed session is refused as any push is (the party's nonce changed meanwhile).
   * - In a session the device opened, the party has not authenticated yet (its stored nonce may be spent): a
   *   rate-limited refusal, after which the party sends its message again; our own last message stays the one
   *   sent again when no answer comes.
   */
  async #refuse(msg: SyncMLMessage, inbound: InboundMessage, verdict: Extract<Verdict, { ok: false }>): Promise<void> {
    const { clock, quietLog, authFailureAnswers, admission } = this.#engine
    const now = clock.now()
    const fields = { msgId: msg.hdr.msgId, code: verdict.failure.code }
    if (this.#gate.authenticated) {
      quietLog.note(`${this.party}\u0000unauthenticated`, now, (suppressed) =>
        this.#log.warn('message that does not authenticate dropped', { ...fields, suppressed }))
      return
    }
    if (this.initiator === 'party') {
      await admission.refusePush(this.party, this.#account, msg, inbound, this.#gate, verdict)
      this.#end('rejected')
      return
    }
    if (!authFailureAnswers.take(this.party, now)) {
      quietLog.note(`${this.party}\u0000refusals`, now, (suppressed) =>
        this.#log.warn('answers to failed authentication dropped (rate limit)', { ...fields, suppressed }))
      return
    }
    quietLog.note(`${this.party}\u0000auth`, now, (suppressed) => this.#log.warn('authentication failed', { ...fields, suppressed }))
    const chal = await this.#gate.refusalChallenge(verdict)
    this.#sentMsgId += 1
    const out = refusal(this.#engine, { party: this.party, account: this.#account, msg, inbound, msgId: this.#sentMsgId, chal, code: verdict.failure.status })
    await this.#handOver(out)
  }

  /** What the message's handlers asked for once its changes were durable (MessageOps.afterCommit). */
  #runFollowUps(followUps: Array<() => void>): void {
    for (const followUp of followUps) {
      try {
        followUp()
      } catch (error) {
        this.#log.error('follow-up of a committed message failed', { error })
      }
    }
  }

  async #sendGenericAlert(spec: GenericAlertSpec, into: ReplyBuilder, queued: string[]): Promise<void> {
    const command = genericAlertCommand(spec)
    if (this.#account === undefined) return into.command(command)
    // Bounded per party (binding.md §11): one that does not fit the queue still goes in this answer.
    const pending = this.#engine.alertQueue.enqueue(this.party, spec)
    // An alert carried in our answer to the party does not wait for the disk: if the answer is lost, the party
    // asks again (a gateway repeats its detection); if it arrives, the save begun here keeps the alert queued
    // until the party acknowledges it. Waiting would put an fsync into every detection round trip.
    void this.#engine.saveState()
    if (pending === undefined) return into.command(command)
    queued.push(pending.id)
    into.command(command, pending.id)
  }

  /** A Status of the party, in a message that authenticated (`trusted`) or was admitted unauthenticated. */
  #consumeStatus(status: Status, trusted: boolean): void {
    if (isHeaderStatus(status)) {
      const msgRef = Number(status.msgRef)
      if (msgRef >= this.#answerableFrom && msgRef <= this.#sentMsgId) this.#readHeaderStatus(status, trusted)
      return
    }
    const key = `${status.msgRef}:${status.cmdRef}`
    const alertId = this.#alertRefs.get(key)
    if (alertId === undefined) return
    const code = status.data.trim()
    // DM Protocol 1.2, 8.7: the server answers a Generic Alert 200 or 202; anything else leaves it queued.
    if ((code === '200' || code === '202') && trusted) {
      this.#alertRefs.delete(key)
      if (this.#engine.state.removeAlert(this.party, alertId)) void this.#engine.saveState()
    } else {
      this.#log.info('generic alert not acknowledged, kept queued', { code })
    }
  }

  #readHeaderStatus(status: Status, trusted: boolean): void {
    const effect = this.#device.onHeaderStatus(status, trusted)
    if (this.#http && effect === 'challenged') this.#credAccepted = false
    else if (this.#http && effect === 'accepted' && trusted && status.data.trim() === '212') this.#credAccepted = true
    if (effect === 'challenged') this.#challenged = true
    else if (effect === 'refused') this.#quietly('refused', (suppressed) => this.#log.warn('party refused our message', { code: status.data, suppressed }))
    else if (effect === 'weaker') {
      this.#engine.quietLog.note(`${this.party}\u0000weaker`, this.#engine.clock.now(), (suppressed) =>
        this.#log.warn('challenge for a weaker scheme than the account\'s ignored', { type: status.chal?.meta.type, suppressed }))
    }
  }

  #package1(code: typeof ALERT.CLIENT_INITIATED_MGMT | typeof ALERT.SERVER_INITIATED_MGMT): ReplyEntry[] {
    // Only a party with an account is opened a session to (the manager checks), so it has a queue of its own.
    const { tree, state, constants } = this.#engine
    return package1(code, tree, state.pendingAlerts(this.party).slice(0, constants.maxGenericAlertsPerPackage))
  }

  /** What `composeMessage` needs for our next message (MsgID = last + 1), with our credentials. */
  #composeInput(headerStatus: Status | undefined, entries: ReplyEntry[]): ComposeInput {
    return {
      constants: this.#engine.constants,
      deviceId: this.#engine.deviceId,
      party: this.party,
      account: this.#account,
      sessionId: this.sessionId,
      msgId: this.#sentMsgId + 1,
      encoding: this.#encoding,
      auth: this.#ourAuth(),
      headerStatus,
      entries,
      partyMaxMsgSize: this.#partyMaxMsgSize,
      respUri: this.#respUri,
    }
  }

  /**
   * Our credentials for the next message. Over MQTT, in every one (binding.md §6). Over HTTP, OMA's rule (§10):
   * md5 and basic until the party has accepted them for the session (212), and again whenever it challenges;
   * HMAC in every message.
   */
  #ourAuth(): OutboundAuth | undefined {
    const auth = this.#device.outbound()
    return this.#http && this.#credAccepted && auth?.scheme !== 'hmac' ? undefined : auth
  }

  /**
   * Builds our next message, fitted to the party's MaxMsgSize and the broker's packet size (binding.md §11). An
   * answer that could not fit was refused before (`#tooLarge`); what is left too large is a message whose fixed
   * part alone is (a Package 1 under a MaxMsgSize smaller than its DevInfo): it goes as it is, logged.
   */
  #compose(headerStatus: Status | undefined, entries: ReplyEntry[]): OutboundMessage {
    const composed = composeMessage(this.#composeInput(headerStatus, entries))
    if (composed.oversize) {
      const { quietLog, clock, constants } = this.#engine
      quietLog.note(`${this.party}\u0000oversize`, clock.now(), (suppressed) =>
        this.#log.warn('message larger than the party or the broker takes, sent as it is', {
          size: composed.message.payload.length, limit: messageLimit(constants, this.#partyMaxMsgSize), suppressed,
        }))
    }
    for (const [key, alertId] of composed.alertRefs) this.#alertRefs.set(key, alertId)
    return composed.message
  }

  /**
   * Sends our next message, the one sent again (same MsgID) when no answer comes in time. It is known as sent
   * (closing or not) before the hand-over: the party may answer before the broker's acknowledgement reaches us,
   * and a closing message must already be known as one by then (a new request ends such a session at once). The
   * wait for an answer starts once it is handed over: the transport holds a message while its broker is away.
   */
  async #transmit(out: OutboundMessage, entries: ReplyEntry[], closing = false): Promise<void> {
    this.#sentMsgId += 1
    this.#answerableFrom = this.#sentMsgId
    this.#lastSent = out
    this.#lastEntries = entries
    this.#retransmit.sent(closing)
    await this.#handOver(out)
    if (!this.#ended) this.#retransmit.handedOver()
  }

  async #timedOut(action: TimeoutAction): Promise<void> {
    const fields = { msgId: this.#answerableFrom }
    // A party that never authenticated did not complete anything: the session is tried again later.
    if (action === 'close') return this.#end(this.#admittedOnce ? 'completed' : 'failed')
    if (action === 'give-up') {
      this.#log.warn('session timed out', fields)
      return this.#end('failed')
    }
    this.#log.info('message sent again', fields)
    await this.#handOver(this.#lastSent!)
    if (!this.#ended) this.#retransmit.resent()
  }

  async #handOver(out: OutboundMessage): Promise<void> {
    try {
      await this.#engine.send(out)
    } catch (error) {
      if (error instanceof TransportError && error.kind === 'refused') {
        // binding.md §10: sent again it would be refused again; the session fails and is retried later.
        this.#log.warn('message refused on its way to the party', { error: error.message })
        this.#end('failed')
        return
      }
      // Not handed over: the session timeout sends it again, sooner when the binding knows it was lost.
      this.#quietly('send', (suppressed) => this.#log.warn('send failed', { error, suppressed }))
      if (error instanceof TransportError) this.#retransmit.lost()
    }
  }

  /**
   * Once a message's work is done (its changes are durable already, `runCommands`): nonces written to the tree
   * and the agent state are saved later (`lazyFlushDelayMs`), since the counter reservation already keeps them
   * from repeating and the unclean-stop guard covers a crash.
   */
  #settle(): void {
    const wrote = this.#gate.bookkeeping || this.#device.nonceWritten
    this.#gate.bookkeeping = false
    this.#device.nonceWritten = false
    if (wrote) this.#engine.bookkeeping()
  }

  /** A warning a flood can repeat: at most once a `quietLogIntervalMs` per party and `kind`, with a count of the rest. */
  #quietly(kind: string, write: (suppressed: number) => void): void {
    this.#engine.quietLog.note(`${this.party}\u0000${kind}`, this.#engine.clock.now(), write)
  }

  #logStart(): void {
    this.#log.info('session started', { initiator: this.initiator })
  }

  #end(outcome: SessionOutcome): void {
    if (this.#ended) return
    this.#ended = true
    this.#retransmit.cancel()
    const fields = { outcome }
    if (outcome === 'failed') this.#log.warn('session failed', fields)
    else if (outcome === 'rejected') this.#log.debug('pushed message refused; no session', fields)
    else this.#log.info('session ended', fields)
    this.#resolveDone(outcome)
  }
}

function isHeaderStatus(status: Status): boolean {
  return status.cmdRef === '0' || status.cmd === 'SyncHdr'
}
