import { ALERT } from '../codec/gwmo.ts'
import type { Chal, Status, SyncMLMessage } from '../codec/syncml-model.ts'
import { isWbxmlPayload, type MessageEncoding } from '../codec/syncml.ts'
import type { Logger } from '../log.ts'
import type { InboundMessage, OutboundMessage } from '../transport/port.ts'
import type { Engine } from './engine.ts'
import type { GenericAlertSpec } from './agent-state.ts'
import { alertCommand, genericAlertCommand, package1 } from './package1.ts'
import type { Account } from '../tree/accounts.ts'
import { denyCommands, runCommands } from './run-commands.ts'
import { composeMessage } from './outbound.ts'
import { makeStatus, ReplyBuilder, type ReplyEntry } from './reply.ts'
import { Retransmitter, type TimeoutAction } from './retransmit.ts'
import { Serial } from './serial.ts'
import { DeviceCredentials, PartyAuthenticator } from './session-auth.ts'

/**
 * Whether the party's commands may run, and the device's Status for its SyncHdr: its code, and a Chal or a
 * fresh nonce still to issue.
 */
interface Admission {
  admitted: boolean
  code: number
  chal?: Chal | undefined
  nonceDue?: boolean
}

const MQTT_URL = /^mqtts?:\/\//i

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
  lastInbound: number | undefined
  lastReply: OutboundMessage | undefined
  /** When it ended. */
  at: number
}

/**
 * One DM session with one party (OMA DM Protocol 1.2, 8; binding.md §3): its SessionID, our MsgID counter, the
 * party's last MsgID, authentication both ways, the last message we sent (sent again, same MsgID, when no answer
 * comes in time, and given again for a duplicate of the message it answered), and the Generic Alerts in flight.
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
  /** The first `mqtt://`/`mqtts://` AppAddr of the party's account (binding.md §2), if any. */
  readonly #address: string | undefined
  readonly #first: boolean
  readonly #partyAuth: PartyAuthenticator
  readonly #device: DeviceCredentials
  #sentMsgId = 0
  #lastInbound: number | undefined
  #lastSent: OutboundMessage | undefined
  /** The inbound MsgID that `#lastSent` answers. */
  #lastSentAnswers: number | undefined
  readonly #retransmit: Retransmitter
  #package1Resends = 0
  /** What our last message held besides the Status for the party's SyncHdr: sent again if the party refuses it. */
  #lastEntries: ReplyEntry[] = []
  /** The Chal our last message gave the party on its SyncHdr's Status, if any. */
  #lastChal: Chal | undefined
  #challenged = false
  #encoding: MessageEncoding = 'xml'
  #partyMaxMsgSize: number | undefined
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
    this.#address = options.account?.addresses.find((a) => MQTT_URL.test(a.addr))?.addr
    this.#first = options.first
    this.#sentMsgId = options.continuesAfter ?? 0
    this.#partyAuth = new PartyAuthenticator(engine.tree, engine.nonces, options.party, options.account)
    this.#device = new DeviceCredentials(engine.tree, options.account, engine.deviceId)
    this.done = new Promise((resolve) => (this.#resolveDone = resolve))
    const { clock, constants } = engine
    this.#retransmit = new Retransmitter(clock, constants.sessionTimeoutMs, constants.retransmitCount, (action) => {
      void this.#serially(() => this.#timedOut(action))
    })
    // A pushed session exists only once a message of it is admitted: a flood of refused messages logs no sessions.
    if (this.initiator === 'device') this.#logStart()
  }

  get ended(): boolean {
    return this.#ended
  }

  /** The MsgID of the last message we sent in this session (0 before the first). */
  get lastMsgId(): number {
    return this.#sentMsgId
  }

  /** Package 1 of a session the device opens: Alert 1201 or 1200, DevInfo, pending Generic Alerts, Final. */
  start(alert: typeof ALERT.CLIENT_INITIATED_MGMT | typeof ALERT.SERVER_INITIATED_MGMT): Promise<void> {
    return this.#serially(async () => {
      const out = this.#compose(undefined, this.#package1(alert))
      await this.#transmit(out, undefined)
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

  /** Ends the session without a word (the engine is stopping). */
  stop(): void {
    this.#end('stopped')
  }

  /** The record kept after the end. */
  remains(): EndedSession {
    return {
      sessionId: this.sessionId,
      lastInbound: this.#lastInbound,
      lastReply: this.#lastSentAnswers === this.#lastInbound ? this.#lastSent : undefined,
      at: this.#engine.clock.now(),
    }
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
      log.warn('message with an unusable MsgID dropped')
      return
    }
    if (this.#lastInbound !== undefined && msgId <= this.#lastInbound) {
      // binding.md §3: a duplicate is answered again from the same state, never executed twice; an older
      // message arriving late has been superseded.
      if (msgId === this.#lastInbound && this.#lastSentAnswers === msgId && this.#lastSent) {
        log.debug('duplicate message answered again', { msgId })
        await this.#handOver(this.#lastSent)
      } else {
        log.info('old message ignored', { msgId })
      }
      return
    }
    this.#lastInbound = msgId
    this.#retransmit.cancel()
    this.#encoding = isWbxmlPayload(inbound.payload, inbound.contentType) ? 'wbxml' : 'xml'
    this.#partyMaxMsgSize = msg.hdr.meta?.maxMsgSize ?? this.#partyMaxMsgSize

    // Authentication of the party comes first: nothing of an unauthenticated party runs (binding.md §6).
    const header = await this.#admit(msg, inbound)
    if (header === undefined) return this.#endIfRefusedPush()
    const { admitted } = header
    if (admitted && !this.#admittedOnce) {
      this.#admittedOnce = true
      if (this.initiator === 'party') this.#logStart()
    }
    const reply = new ReplyBuilder(msg.hdr.msgId)
    let followUps: Array<() => void> = []
    if (admitted) {
      const ran = await runCommands(this.#engine, msg.body, {
        reply,
        logger: log,
        party: { serverId: this.party, hasAccount: this.#account !== undefined, authenticated: this.#partyAuth.authenticated },
        session: { sessionId: this.sessionId, initiator: this.initiator, msgId: msg.hdr.msgId, first: this.#first },
        consumeStatus: (status) => this.#consumeStatus(status),
        sendGenericAlert: (spec, into) => this.#sendGenericAlert(spec, into),
      })
      followUps = ran.followUps
      if (ran.aborted) {
        this.#settle()
        log.info('session aborted by the party')
        this.#end('aborted')
        this.#runFollowUps(followUps)
        return
      }
    } else {
      denyCommands(msg.body, reply, header.code, (status) => this.#consumeStatus(status))
    }

    // The party challenged our credentials: what it refused goes again with new ones (DM Protocol 1.2, 9.3):
    // Package 1 (with the Alert it began with), or our answer to the party's commands, which never run twice.
    const own: ReplyEntry[] = []
    let refusedChal: Chal | undefined
    if (this.#challenged) {
      this.#challenged = false
      if (++this.#package1Resends > this.#engine.constants.maxPackage1Resends) {
        log.warn('party keeps refusing our credentials')
        this.#settle()
        this.#end('failed')
        this.#runFollowUps(followUps)
        return
      }
      own.push(...this.#lastEntries)
      // A nonce the refused message handed out has not reached the party: the same Chal goes again.
      refusedChal = this.#lastChal
    }

    // binding.md §3: a message with Final that holds nothing but Status ends the session; no reply is sent. Unless
    // the party failed to authenticate: it gets its 401/407 and Chal, or it would never learn the nonce to use.
    const holdsCommands = msg.body.some((c) => c.kind !== 'Status')
    if (msg.final && !holdsCommands && own.length === 0 && admitted) {
      this.#settle()
      this.#end('completed')
      return
    }
    // A message without Final is one of several in its package: ask for the next one (DM Protocol 1.2, 8.6).
    if (!msg.final) own.push({ kind: 'command', command: alertCommand(ALERT.NEXT_MESSAGE) })

    // The fresh nonce is issued only now that a reply carries it (binding.md §6).
    const chal = header.nonceDue === true ? await this.#partyAuth.freshChallenge() : (header.chal ?? refusedChal)
    const headerStatus = makeStatus(msg.hdr.msgId, '0', 'SyncHdr', header.code, {
      targetRef: msg.hdr.target.locUri,
      sourceRef: msg.hdr.source.locUri,
      chal,
    })
    const out = this.#compose(headerStatus, [...reply.entries, ...own])
    this.#settle()
    // binding.md §3: our message holding nothing but Status (with Final) may end the session; the party still
    // may go on with more commands, so the session stays open for them until the timeout, sending nothing again.
    await this.#transmit(out, msgId, reply.onlyStatuses && own.length === 0)
    this.#runFollowUps(followUps)
    if (!admitted) this.#endIfRefusedPush()
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

  /** A pushed message that did not authenticate starts no session: its answer (if any) was all it gets. */
  #endIfRefusedPush(): void {
    if (!this.#partyAuth.authenticated && this.initiator === 'party') this.#end('rejected')
  }

  /**
   * Whether the message's commands may run, and the Status for its SyncHdr: the party authenticated; or every
   * command is an alert admitted for unauthenticated parties; or not, answered 401/407 with a Chal, unless the
   * party's answers are over their rate (then undefined: nothing is answered).
   */
  async #admit(msg: SyncMLMessage, inbound: InboundMessage): Promise<Admission | undefined> {
    const verdict = this.#partyAuth.verify(msg, inbound.payload, inbound.properties)
    if (verdict.ok) return { admitted: true, ...this.#partyAuth.accept(verdict) }
    if (this.#engine.alerts.admitsMessage(msg.body, { serverId: this.party, hasAccount: this.#account !== undefined })) {
      return { admitted: true, code: 200 }
    }
    const { clock, authFailureAnswers, nonces, quietLog } = this.#engine
    const now = clock.now()
    const fields = { code: verdict.code, reason: verdict.reason }
    if (!authFailureAnswers.take(this.party, now)) {
      // binding.md §6: the rest is dropped and logged (the log itself at most once a second per party).
      if (quietLog.allow(`${this.party}\u0000drop`, now)) this.#log.warn('answers to failed authentication dropped (rate limit)', fields)
      return undefined
    }
    this.#log.warn('authentication failed', fields)
    const chal = await this.#partyAuth.failureChallenge(verdict, () => nonces.mayRotateOnFailure(this.party, now))
    return { admitted: false, code: verdict.code, chal }
  }

  async #sendGenericAlert(spec: GenericAlertSpec, into: ReplyBuilder): Promise<void> {
    const command = genericAlertCommand(spec)
    if (this.#account === undefined) return into.command(command)
    const pending = this.#engine.state.enqueueAlert(this.party, spec, this.#engine.clock.now())
    // An alert carried in our answer to the party does not wait for the disk: if the answer is lost, the party
    // asks again (a gateway repeats its detection); if it arrives, the save begun here keeps the alert queued
    // until the party acknowledges it. Waiting would put an fsync into every detection round trip.
    void this.#engine.saveState()
    into.command(command, pending.id)
  }

  #consumeStatus(status: Status): void {
    if (status.cmdRef === '0' || status.cmd === 'SyncHdr') {
      if (status.msgRef !== String(this.#sentMsgId)) return
      const effect = this.#device.onHeaderStatus(status, this.#partyAuth.authenticated)
      if (effect === 'challenged') this.#challenged = true
      else if (effect === 'refused') {
        this.#log.warn('party refused our message', { code: status.data })
      }
      return
    }
    const key = `${status.msgRef}:${status.cmdRef}`
    const alertId = this.#alertRefs.get(key)
    if (alertId === undefined) return
    const code = status.data.trim()
    // DM Protocol 1.2, 8.7: the server answers a Generic Alert 200 or 202; anything else leaves it queued.
    if ((code === '200' || code === '202') && this.#partyAuth.authenticated) {
      this.#alertRefs.delete(key)
      if (this.#engine.state.removeAlert(this.party, alertId)) void this.#engine.saveState()
    } else {
      this.#log.info('generic alert not acknowledged, kept queued', { code })
    }
  }

  #package1(code: typeof ALERT.CLIENT_INITIATED_MGMT | typeof ALERT.SERVER_INITIATED_MGMT): ReplyEntry[] {
    // Only a party with an account is opened a session to (the manager checks), so it has a queue of its own.
    const { tree, state, constants } = this.#engine
    return package1(code, tree, state.pendingAlerts(this.party).slice(0, constants.maxGenericAlertsPerPackage))
  }

  /** Builds our next message (MsgID = last + 1) with its credentials, fitted to the party's MaxMsgSize. */
  #compose(headerStatus: Status | undefined, entries: ReplyEntry[]): OutboundMessage {
    const composed = composeMessage({
      constants: this.#engine.constants,
      deviceId: this.#engine.deviceId,
      party: this.party,
      address: this.#address,
      sessionId: this.sessionId,
      msgId: this.#sentMsgId + 1,
      encoding: this.#encoding,
      auth: this.#device.outbound(),
      headerStatus,
      entries,
      partyMaxMsgSize: this.#partyMaxMsgSize,
    })
    this.#lastEntries = entries
    this.#lastChal = headerStatus?.chal
    if (composed.oversize) {
      this.#log.warn('reply exceeds the party MaxMsgSize', { size: composed.message.payload.length })
    }
    for (const [key, alertId] of composed.alertRefs) this.#alertRefs.set(key, alertId)
    return composed.message
  }

  async #transmit(out: OutboundMessage, answers: number | undefined, closing = false): Promise<void> {
    this.#sentMsgId += 1
    this.#lastSent = out
    this.#lastSentAnswers = answers
    await this.#handOver(out)
    if (!this.#ended) this.#retransmit.sent(closing)
  }

  /**
   * Ends the session if our last message held nothing but Status: the session may be over, and waits only in
   * case the party goes on. A new request for the party ends it at once.
   */
  finishIfClosing(): void {
    if (this.#retransmit.closing) this.#end('completed')
  }

  async #timedOut(action: TimeoutAction): Promise<void> {
    const fields = { msgId: this.#sentMsgId }
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
      // Not handed over: the session timeout sends it again.
      this.#log.warn('send failed', { error })
    }
  }

  /**
   * Once a message's work is done (its changes are durable already, `runCommands`): nonces written to the tree
   * are flushed later (`lazyFlushDelayMs`), since the counter reservation already keeps them from repeating.
   */
  #settle(): void {
    const wrote = this.#partyAuth.nonceWritten || this.#device.nonceWritten
    this.#partyAuth.nonceWritten = false
    this.#device.nonceWritten = false
    if (wrote) this.#engine.nonceBookkeeping()
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
