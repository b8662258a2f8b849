import { ALERT, CONTENT_TYPE } from '../codec/gwmo.ts'
import type { Chal, Command, Status, SyncHdr, SyncMLMessage } from '../codec/syncml-model.ts'
import { encodeMessage, isWbxmlPayload, type MessageEncoding } from '../codec/syncml.ts'
import type { InboundMessage, OutboundMessage } from '../transport/port.ts'
import type { Engine } from './engine.ts'
import type { PartyInfo, SessionInfo } from './handlers/context.ts'
import { runCommands, denyCommands } from './run-commands.ts'
import { devInfoReplace, genericAlertCommand, sessionAlert } from './package1.ts'
import type { PartyAccount } from './party-account.ts'
import { assignCmdIds, makeStatus, ReplyBuilder, type ReplyEntry } from './reply.ts'
import { DeviceCredentials, PartyAuthenticator } from './session-auth.ts'
import { fitToSize } from './size.ts'

export type SessionOutcome = 'completed' | 'aborted' | 'failed' | 'rejected' | 'stopped'

export interface SessionOptions {
  party: string
  sessionId: string
  initiator: 'device' | 'party'
  /** The account the device holds for the party; a party without one only runs alerts admitted unauthenticated. */
  account: PartyAccount | undefined
}

/** What an ended session leaves behind, so a late duplicate is answered from it (binding.md §3). */
export interface EndedSession {
  sessionId: string
  lastInbound: number | undefined
  lastReply: OutboundMessage | undefined
  endedAt: number
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
  readonly #account: PartyAccount | undefined
  readonly #partyAuth: PartyAuthenticator
  readonly #device: DeviceCredentials
  #sentMsgId = 0
  #lastInbound: number | undefined
  #lastSent: OutboundMessage | undefined
  /** The inbound MsgID that `#lastSent` answers. */
  #lastSentAnswers: number | undefined
  #timer: unknown
  #retransmits = 0
  #closing = false
  #package1Resends = 0
  #challenged = false
  #encoding: MessageEncoding = 'xml'
  #partyMaxMsgSize: number | undefined
  /** `<our MsgID>:<CmdID>` of each Generic Alert sent → its id in the persisted queue. */
  readonly #alertRefs = new Map<string, string>()
  /** A message of the party ran, authenticated or admitted unauthenticated. */
  #admittedOnce = false
  #ended = false
  #chain: Promise<void> = Promise.resolve()

  constructor(engine: Engine, options: SessionOptions) {
    this.#engine = engine
    this.party = options.party
    this.sessionId = options.sessionId
    this.initiator = options.initiator
    this.#account = options.account
    this.#partyAuth = new PartyAuthenticator(engine.tree, engine.nonces, options.party, options.account)
    this.#device = new DeviceCredentials(engine.tree, options.account, engine.deviceId)
    this.done = new Promise((resolve) => (this.#resolveDone = resolve))
    // A pushed session exists only once a message of it is admitted: a flood of refused messages logs no sessions.
    if (this.initiator === 'device') this.#logStart()
  }

  get ended(): boolean {
    return this.#ended
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
      endedAt: this.#engine.clock.now(),
    }
  }

  #serially(task: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(() => (this.#ended ? undefined : task()))
    this.#chain = run.catch((error: unknown) => {
      this.#engine.logger.error('session error', { party: this.party, sessionId: this.sessionId, error })
      this.#end('failed')
    })
    return this.#chain
  }

  async #process(msg: SyncMLMessage, inbound: InboundMessage): Promise<void> {
    const log = this.#engine.logger
    const msgId = Number(msg.hdr.msgId)
    if (!Number.isSafeInteger(msgId) || msgId < 1) {
      log.warn('message with an unusable MsgID dropped', { party: this.party, sessionId: this.sessionId })
      return
    }
    if (this.#lastInbound !== undefined && msgId <= this.#lastInbound) {
      // binding.md §3: a duplicate is answered again from the same state, never executed twice; an older
      // message arriving late has been superseded.
      if (msgId === this.#lastInbound && this.#lastSentAnswers === msgId && this.#lastSent) {
        log.debug('duplicate message answered again', { party: this.party, sessionId: this.sessionId, msgId })
        await this.#resend(this.#lastSent)
      } else {
        log.info('old message ignored', { party: this.party, sessionId: this.sessionId, msgId })
      }
      return
    }
    this.#lastInbound = msgId
    this.#disarm()
    this.#closing = false
    this.#encoding = isWbxmlPayload(inbound.payload, inbound.contentType) ? 'wbxml' : 'xml'
    if (msg.hdr.meta?.maxMsgSize !== undefined) this.#partyMaxMsgSize = msg.hdr.meta.maxMsgSize

    // Authentication of the party comes first: nothing of an unauthenticated party runs (binding.md §6).
    const partyInfo = (): PartyInfo => ({
      serverId: this.party,
      hasAccount: this.#account !== undefined,
      authenticated: this.#partyAuth.authenticated,
    })
    const verdict = this.#partyAuth.verify(msg, inbound.payload, inbound.properties)
    let header: { code: number; chal?: Chal }
    let admitted = verdict.ok
    if (verdict.ok) header = await this.#partyAuth.accept(verdict)
    else if (this.#engine.alerts.admitsMessage(msg.body, { serverId: this.party, hasAccount: this.#account !== undefined })) {
      header = { code: 200 }
      admitted = true
    } else {
      const now = this.#engine.clock.now()
      log.warn('authentication failed', { party: this.party, sessionId: this.sessionId, code: verdict.code, reason: verdict.reason })
      if (!this.#engine.authFailureAnswers.take(this.party, now)) {
        log.warn('answer to failed authentication dropped (rate limit)', { party: this.party, sessionId: this.sessionId })
        if (!this.#partyAuth.authenticated && this.initiator === 'party') this.#end('rejected')
        return
      }
      const chal = await this.#partyAuth.failureChallenge(verdict, () => this.#engine.nonces.mayRotateOnFailure(this.party, now))
      header = chal ? { code: verdict.code, chal } : { code: verdict.code }
    }

    if (admitted && !this.#admittedOnce) {
      this.#admittedOnce = true
      if (this.initiator === 'party') this.#logStart()
    }
    const reply = new ReplyBuilder(msg.hdr.msgId)
    const session: SessionInfo = { sessionId: this.sessionId, initiator: this.initiator, msgId: msg.hdr.msgId }
    let changed = false
    if (admitted) {
      const ran = await runCommands(this.#engine, msg.body, {
        reply,
        party: partyInfo(),
        session,
        consumeStatus: (status) => this.#consumeStatus(status),
        sendGenericAlert: async (spec, into) => {
          const command = genericAlertCommand({ id: '', alert: spec, queuedAt: 0 })
          if (this.#account === undefined) return into.command(command)
          const pending = this.#engine.state.enqueueAlert(this.party, spec, this.#engine.clock.now())
          await this.#engine.state.save()
          into.command(command, pending.id)
        },
      })
      changed = ran.changed
      if (ran.aborted) {
        if (changed) await this.#engine.tree.flush()
        this.#afterNonces(changed)
        log.info('session aborted by the party', { party: this.party, sessionId: this.sessionId })
        this.#end('aborted')
        return
      }
    } else {
      denyCommands(msg.body, reply, header.code, (status) => this.#consumeStatus(status))
    }

    // The party challenged our credentials: back to Package 1 with new ones (DM Protocol 1.2, 9.3).
    const own: ReplyEntry[] = []
    if (this.#challenged) {
      this.#challenged = false
      if (++this.#package1Resends > this.#engine.constants.maxPackage1Resends) {
        log.warn('party keeps refusing our credentials', { party: this.party, sessionId: this.sessionId })
        this.#afterNonces(changed)
        this.#end('failed')
        return
      }
      own.push(...this.#package1(this.initiator === 'device' ? ALERT.CLIENT_INITIATED_MGMT : ALERT.SERVER_INITIATED_MGMT))
    }

    // binding.md §3: a message with Final that holds nothing but Status ends the session; no reply is sent.
    const holdsCommands = msg.body.some((c) => c.kind !== 'Status')
    if (msg.final && !holdsCommands && own.length === 0) {
      if (changed) await this.#engine.tree.flush()
      this.#afterNonces(changed)
      this.#end(this.#admittedOnce ? 'completed' : 'failed')
      return
    }
    // A message without Final is one of several in its package: ask for the next one (DM Protocol 1.2, 8.6).
    if (!msg.final) own.push({ kind: 'command', command: { kind: 'Alert', cmdId: '', data: ALERT.NEXT_MESSAGE, items: [] } })

    const headerStatus = makeStatus(msg.hdr.msgId, '0', 'SyncHdr', header.code, {
      targetRef: msg.hdr.target.locUri,
      sourceRef: msg.hdr.source.locUri,
      ...(header.chal !== undefined && { chal: header.chal }),
    })
    const out = this.#compose(headerStatus, [...reply.entries, ...own])
    // binding.md §3: a 200 for a change leaves only once the change is durable.
    if (changed) await this.#engine.tree.flush()
    this.#afterNonces(changed)
    // binding.md §3: our message holding nothing but Status (with Final) may end the session; the party still
    // may go on with more commands, so the session stays open for them until the timeout, sending nothing again.
    await this.#transmit(out, msgId, reply.onlyStatuses && own.length === 0)
    if (!admitted && !this.#partyAuth.authenticated && this.initiator === 'party') {
      // A pushed message that did not authenticate starts no session: its answer was all it gets.
      this.#end('rejected')
    }
  }

  #consumeStatus(status: Status): void {
    if (status.cmdRef === '0' || status.cmd === 'SyncHdr') {
      if (status.msgRef !== String(this.#sentMsgId)) return
      const effect = this.#device.onHeaderStatus(status, this.#partyAuth.authenticated)
      if (effect === 'challenged') this.#challenged = true
      else if (effect === 'refused') {
        this.#engine.logger.warn('party refused our message', { party: this.party, sessionId: this.sessionId, code: status.data })
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
      if (this.#engine.state.removeAlert(this.party, alertId)) {
        this.#engine.state.save().catch((error: unknown) => this.#engine.logger.error('agent state save failed', { error }))
      }
    } else {
      this.#engine.logger.info('generic alert not acknowledged, kept queued', { party: this.party, code })
    }
  }

  #package1(code: typeof ALERT.CLIENT_INITIATED_MGMT | typeof ALERT.SERVER_INITIATED_MGMT): ReplyEntry[] {
    const entries: ReplyEntry[] = [
      { kind: 'command', command: sessionAlert(code) },
      { kind: 'command', command: devInfoReplace(this.#engine.tree) },
    ]
    if (this.#account !== undefined) {
      const pending = this.#engine.state.pendingAlerts(this.party).slice(0, this.#engine.constants.maxGenericAlertsPerPackage)
      for (const alert of pending) entries.push({ kind: 'command', command: genericAlertCommand(alert), alertId: alert.id })
    }
    return entries
  }

  /** Builds our next message (MsgID = last + 1) with its credentials, fitted to the party's MaxMsgSize. */
  #compose(headerStatus: Status | undefined, entries: ReplyEntry[]): OutboundMessage {
    const msgId = this.#sentMsgId + 1
    const { constants, deviceId } = this.#engine
    const auth = this.#device.outbound()
    const hdr: SyncHdr = {
      verDTD: constants.verDTD,
      verProto: constants.verProto,
      sessionId: this.sessionId,
      msgId: String(msgId),
      target: { locUri: this.party },
      source: auth ? { locUri: deviceId, locName: auth.username } : { locUri: deviceId },
      meta: { maxMsgSize: constants.maxMsgSize },
    }
    if (auth && auth.scheme !== 'hmac') hdr.cred = auth.cred
    const encode = (list: ReplyEntry[]) => {
      const refs: [string, string][] = []
      const body: Command[] = assignCmdIds(headerStatus ? [{ kind: 'status', status: headerStatus, write: false }, ...list] : list, (cmdId, alertId) =>
        refs.push([`${msgId}:${cmdId}`, alertId]),
      )
      return { payload: encodeMessage({ hdr, body, final: true }, this.#encoding), refs }
    }
    const fitted = fitToSize(entries, this.#partyMaxMsgSize, encode)
    if (fitted.oversize) {
      this.#engine.logger.warn('reply exceeds the party MaxMsgSize', { party: this.party, size: fitted.payload.length })
    }
    for (const [key, alertId] of fitted.refs) this.#alertRefs.set(key, alertId)
    const out: OutboundMessage = {
      to: this.party,
      payload: fitted.payload,
      contentType: this.#encoding === 'wbxml' ? CONTENT_TYPE.WBXML : CONTENT_TYPE.XML,
    }
    if (this.#account?.address !== undefined) out.address = this.#account.address
    if (auth?.scheme === 'hmac') out.properties = auth.sign(fitted.payload)
    return out
  }

  async #transmit(out: OutboundMessage, answers: number | undefined, closing = false): Promise<void> {
    this.#sentMsgId += 1
    this.#lastSent = out
    this.#lastSentAnswers = answers
    this.#retransmits = 0
    this.#closing = closing
    await this.#handOver(out)
    this.#arm()
  }

  /**
   * Whether our last message held nothing but Status: the session may be over, and waits only in case the
   * party goes on. A new request for the party ends it at once (`finishIfClosing`).
   */
  get closing(): boolean {
    return this.#closing && !this.#ended
  }

  finishIfClosing(): void {
    if (this.closing) this.#end('completed')
  }

  async #resend(out: OutboundMessage): Promise<void> {
    await this.#handOver(out)
  }

  async #handOver(out: OutboundMessage): Promise<void> {
    try {
      await this.#engine.send(out)
    } catch (error) {
      // Not handed over: the session timeout sends it again.
      this.#engine.logger.warn('send failed', { party: this.party, sessionId: this.sessionId, error })
    }
  }

  /** binding.md §3: no answer within the session timeout → the same message again, a bounded number of times. */
  #arm(): void {
    this.#disarm()
    if (this.#ended) return
    const { clock, constants } = this.#engine
    this.#timer = clock.setTimeout(() => {
      this.#timer = undefined
      void this.#serially(async () => {
        if (this.#closing) {
          this.#end('completed')
          return
        }
        if (this.#retransmits >= constants.retransmitCount || this.#lastSent === undefined) {
          this.#engine.logger.warn('session timed out', { party: this.party, sessionId: this.sessionId })
          this.#end('failed')
          return
        }
        this.#retransmits += 1
        this.#engine.logger.info('message sent again', { party: this.party, sessionId: this.sessionId, msgId: this.#sentMsgId })
        await this.#resend(this.#lastSent)
        this.#arm()
      })
    }, constants.sessionTimeoutMs)
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#engine.clock.clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #afterNonces(flushed: boolean): void {
    const wrote = this.#partyAuth.nonceWritten || this.#device.nonceWritten
    this.#partyAuth.nonceWritten = false
    this.#device.nonceWritten = false
    if (wrote && !flushed) this.#engine.nonceBookkeeping()
  }

  #logStart(): void {
    this.#engine.logger.info('session started', { party: this.party, sessionId: this.sessionId, initiator: this.initiator })
  }

  #end(outcome: SessionOutcome): void {
    if (this.#ended) return
    this.#ended = true
    this.#disarm()
    const fields = { party: this.party, sessionId: this.sessionId, outcome }
    if (outcome === 'failed') this.#engine.logger.warn('session failed', fields)
    else if (outcome === 'rejected') this.#engine.logger.debug('pushed message refused; no session', fields)
    else this.#engine.logger.info('session ended', fields)
    this.#resolveDone(outcome)
  }
}
