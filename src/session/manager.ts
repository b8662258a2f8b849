import { ALERT } from '../codec/gwmo.ts'
import type { Notification } from '../codec/notification.ts'
import type { SyncMLMessage } from '../codec/syncml-model.ts'
import { decodeMessage } from '../codec/syncml.ts'
import type { Logger } from '../log.ts'
import type { InboundMessage, OutboundMessage } from './port.ts'
import type { AgentState, GenericAlertSpec } from './agent-state.ts'
import { AlertQueue } from './alert-queue.ts'
import { AlertRegistry, type AlertHandler, type AlertRegistrationOptions } from './alerts.ts'
import { sessionConstants, type SessionConstants } from './constants.ts'
import type { Clock, Engine, EngineCore, SessionTree } from './engine.ts'
import { NonceIssuer } from './nonces.ts'
import { findAccount, type Account } from '../tree/accounts.ts'
import { Admission } from './admission.ts'
import { busy, Parties, type PartySlot, type QueuedRequest } from './parties.ts'
import { PartyRateLimiter, QuietLog } from '../rate-limit.ts'
import { Serial } from './serial.ts'
import { Session, type EndedSession, type SessionOptions, type SessionOutcome } from './session.ts'

export interface SessionManagerDeps {
  deviceId: string
  tree: SessionTree
  state: AgentState
  /** Hands a message to the transport; resolves once it is handed over (binding.md §2: QoS 1). */
  send: (message: OutboundMessage) => Promise<void>
  logger: Logger
  clock: Clock
  random: (n: number) => Uint8Array
  constants?: Partial<SessionConstants>
  /** Told of every session's end (the GwMO layer and tests listen). */
  onSessionEnd?: (info: SessionEndInfo) => void
}

export interface SessionEndInfo {
  serverId: string
  sessionId: string
  initiator: 'device' | 'party'
  outcome: SessionOutcome
}

/** `Alert 1201`, or `Alert 1200` answering a DM Notification whose digest the caller has checked (binding.md §4.4). */
export type OpenRequest = { alert: 1201 } | { alert: 1200; notification: Notification }

export interface SessionManager {
  /** An inbound message of channel `dm` (others are ignored). Never rejects. */
  receive(inbound: InboundMessage): Promise<void>
  /**
   * Opens a session with a server (Package 1), or queues the request behind the party's active session.
   * Resolves once Package 1 is handed over or the request is queued (or refused: no account). A DM
   * Notification's session id is checked against replays before (the GwMO layer remembers them, binding.md §6).
   */
  openSession(serverId: string, request: OpenRequest): Promise<void>
  /**
   * Persists a Generic Alert for a server; it goes out in the next Package 1 and stays until 200/202. The queue
   * is bounded per party (binding.md §11, `AlertQueue`): its id, or undefined when it was dropped at once.
   */
  queueGenericAlert(serverId: string, alert: GenericAlertSpec): Promise<string | undefined>
  /** Generic Alerts of this Meta/Type are never dropped from a full queue (the layer above coalesces them). */
  keepQueued(type: string): void
  registerAlert(code: number | string, handler: AlertHandler, options?: AlertRegistrationOptions): void
  /**
   * The transport is connected again (binding.md §2, §3): what waited for the broker goes now, not at its timer.
   * A failed client-initiated session waiting for its retry starts now, a server with Generic Alerts queued and
   * no session running gets one, and a running session waiting for an answer sends its message again soon if
   * none comes (`reconnectResendMs`). Harmless when nothing waits.
   */
  reconnected(): void
  /**
   * Runs `task` in arrival order with the party's messages: after those received so far, before any received
   * later. A DM Notification is checked so against the nonce the messages before it leave stored (binding.md §6:
   * a refusal's nonce is stored only once the party's message made with it verifies, and the party may notify
   * right behind that message, or before it learns of the refusal).
   */
  inOrder<T>(party: string, task: () => T): Promise<T>
  /** Ends every session, cancels every timer, and leaves the tree and the state durable. */
  stop(): Promise<void>
}

/**
 * The session engine (binding.md §3, §6): routes inbound DM messages to their sessions, admits new ones (a pushed
 * message that does not authenticate starts nothing and never waits in a party's line), opens sessions, keeps
 * one active session per party (further requests queue behind it; different parties run independently), and
 * retries failed client-initiated sessions with capped exponential backoff and jitter. Transport-free: it takes
 * payloads in and hands payloads to `send`. All state lives in the returned object.
 */
export function createSessionManager(deps: SessionManagerDeps): SessionManager {
  const constants = sessionConstants(deps.constants)
  const logger = deps.logger.child({ module: 'session' })
  const parties = new Parties(constants, deps.clock)
  /** Work under way; made when some begins and dropped when none is left (a fleet's engines are mostly idle). */
  let inFlight: Set<Promise<unknown>> | undefined
  const alerts = new AlertRegistry()
  const quietLog = new QuietLog(constants.quietLogIntervalMs, constants.maxTrackedParties)
  const alertQueue = new AlertQueue({ state: deps.state, perParty: constants.maxPendingAlertsPerParty, clock: deps.clock, quietLog, logger })
  let lazyFlush: unknown
  let stopping = false
  const stopped = new AbortController()

  const core: EngineCore = {
    deviceId: deps.deviceId,
    tree: deps.tree,
    state: deps.state,
    nonces: new NonceIssuer(deps.state, { block: constants.nonceReservationBlock }),
    alerts,
    alertQueue,
    constants,
    clock: deps.clock,
    logger,
    send: deps.send,
    authFailureAnswers: new PartyRateLimiter(constants.authFailureAnswersPerSecond, constants.authFailureBurst, constants.maxTrackedParties),
    quietLog,
    treeWork: new Serial(),
    signal: stopped.signal,
    bookkeeping: () => {
      if (lazyFlush !== undefined || stopping) return
      lazyFlush = deps.clock.setTimeout(() => {
        lazyFlush = undefined
        track(deps.tree.flush().catch((error: unknown) => logger.error('tree flush failed', { error })))
        if (deps.state.dirty) track(core.saveState())
      }, constants.lazyFlushDelayMs)
    },
    saveState: () => deps.state.save().catch((error: unknown) => logger.error('agent state save failed', { error })),
  }
  const engine: Engine = { ...core, admission: new Admission(core) }

  function track<T>(work: Promise<T>): Promise<T> {
    ;(inFlight ??= new Set()).add(work)
    void work
      .finally(() => {
        inFlight?.delete(work)
        if (inFlight?.size === 0) inFlight = undefined
      })
      .catch(() => undefined)
    return work
  }

  /** A line a flood could repeat: at most one a `quietLogIntervalMs` per key, with the count of the rest. */
  function quietly(key: string, write: (suppressed: number) => void): void {
    engine.quietLog.note(key, deps.clock.now(), write)
  }

  function cancelRetry(slot: PartySlot): void {
    if (slot.retryTimer !== undefined) deps.clock.clearTimeout(slot.retryTimer)
    slot.retryTimer = undefined
  }

  /** The party's account, or undefined (logged: a session cannot open without one). */
  function accountOf(party: string): Account | undefined {
    const account = findAccount(deps.tree, party)
    if (account === undefined) quietly(`${party}\u0000no-account`, (suppressed) => logger.warn('no account for the party; session not opened', { party, suppressed }))
    return account
  }

  /** Starts the party's active session. */
  function activate(slot: PartySlot, options: Omit<SessionOptions, 'first'>): Session {
    const { party, account } = options
    const session = new Session(engine, { ...options, first: isFirst(party) })
    slot.active = session
    void session.done.then((outcome) => finished(party, slot, session, account, outcome))
    return session
  }

  function finished(party: string, slot: PartySlot, session: Session, account: Account | undefined, outcome: SessionOutcome): void {
    if (slot.active === session) slot.active = undefined
    if (outcome !== 'rejected' && outcome !== 'stopped') parties.remember(slot, session.remains())
    if (outcome === 'completed' && account !== undefined && isFirst(party)) {
      deps.state.setAccountFlag(party, 'firstSessionDone', true)
      track(engine.saveState())
    }
    if (session.initiator === 'device' && outcome === 'completed') slot.failures = 0
    if (session.initiator === 'device' && outcome === 'failed' && !stopping) scheduleRetry(party, slot)
    try {
      if (outcome !== 'rejected') deps.onSessionEnd?.({ serverId: party, sessionId: session.sessionId, initiator: session.initiator, outcome })
    } catch (error) {
      logger.error('session end listener failed', { error })
    }
    next(party, slot)
  }

  function next(party: string, slot: PartySlot): void {
    if (stopping || busy(slot)) return
    const request = slot.queue.shift()
    if (request === undefined) return parties.forgetIfIdle(party, slot)
    track(request.kind === 'push' ? route(request.msg, request.inbound) : startOpen(party, slot, request.alert, request.sessionId))
  }

  /** binding.md §3: a failed client-initiated session is retried later, with backoff and jitter, capped. */
  function scheduleRetry(party: string, slot: PartySlot): void {
    slot.failures += 1
    const ceiling = Math.min(constants.retryBackoffCapMs, constants.retryBackoffBaseMs * 2 ** Math.min(slot.failures - 1, 30))
    const fraction = Buffer.from(deps.random(4)).readUInt32BE() / 2 ** 32
    // "Equal jitter": at least half the ceiling, so retries never bunch up at zero.
    const delay = Math.round(ceiling / 2 + (fraction * ceiling) / 2)
    cancelRetry(slot)
    logger.info('session retry scheduled', { party, delayMs: delay, failures: slot.failures })
    slot.retryTimer = deps.clock.setTimeout(() => {
      slot.retryTimer = undefined
      track(openSession(party, { alert: 1201 }))
    }, delay)
  }

  function isFirst(party: string): boolean {
    return deps.state.accountFlag(party, 'firstSessionDone') !== true
  }

  function newSessionId(slot: PartySlot): string {
    const taken = new Set([...slot.ended.map((e) => e.sessionId), slot.active?.sessionId])
    for (;;) {
      const id = Buffer.from(deps.random(2)).readUInt16BE()
      // Same form as a notification's (DM Notification 1.2, 6.2.2.10): 1..FFFF, upper-case hex, no leading zeros.
      const hex = id.toString(16).toUpperCase()
      if (id !== 0 && !taken.has(hex)) return hex
    }
  }

  async function startOpen(party: string, slot: PartySlot, alert: '1200' | '1201', sessionId: string | undefined): Promise<void> {
    const account = accountOf(party)
    if (account === undefined) return next(party, slot)
    await activate(slot, { party, sessionId: sessionId ?? newSessionId(slot), initiator: 'device', account }).start(alert)
  }

  async function openSession(serverId: string, request: OpenRequest): Promise<void> {
    if (stopping || accountOf(serverId) === undefined) return
    const slot = parties.slot(serverId)
    // The request's alert code as the Alert carries it: ALERT.SERVER_INITIATED_MGMT or CLIENT_INITIATED_MGMT.
    const alert = `${request.alert}` as const
    const sessionId = request.alert === 1200 ? request.notification.sessionIdHex : undefined
    // This session does what a scheduled retry would have done.
    cancelRetry(slot)
    if (busy(slot)) {
      const duplicate = alert === ALERT.CLIENT_INITIATED_MGMT && slot.queue.some((q) => q.kind === 'open' && q.alert === alert)
      if (!duplicate) enqueue(serverId, slot, { kind: 'open', alert, sessionId })
      return
    }
    await startOpen(serverId, slot, alert, sessionId)
  }

  function enqueue(party: string, slot: PartySlot, request: QueuedRequest): void {
    if (slot.queue.length >= constants.maxQueuedPerParty) {
      quietly(`${party}\u0000queue`, (suppressed) => logger.warn('request dropped: too many waiting for the party', { party, suppressed }))
      return
    }
    slot.queue.push(request)
    // A session that only lingers after our status-only message gives way to the next request at once.
    slot.active?.finishIfClosing()
  }

  async function route(msg: SyncMLMessage, inbound: InboundMessage): Promise<void> {
    if (stopping) return
    if (msg.hdr.target.locUri !== deps.deviceId) {
      quietly('\u0000target', (suppressed) => logger.warn('message for another device dropped', { target: msg.hdr.target.locUri, suppressed }))
      return
    }
    const party = msg.hdr.source.locUri
    const { sessionId } = msg.hdr
    if (!onItsBinding(party, sessionId, inbound)) return
    const current = parties.peek(party)?.active
    if (current !== undefined && !current.ended && current.sessionId === sessionId) {
      if (await current.deliver(msg, inbound)) return
      return route(msg, inbound)
    }
    const ended = parties.ended(party, sessionId)
    if (ended !== undefined) return answerEnded(party, ended.replies, msg, inbound)
    // A SessionID the device has no session for: the party pushes a new session (binding.md §3), admitted only
    // when it authenticates (§6), before it may take a place in the party's line.
    const account = findAccount(deps.tree, party)
    if (account === undefined) {
      if (!alerts.admitsMessage(msg.body, { serverId: party, hasAccount: false })) {
        // binding.md §4.1: a party with no account gets no answer at all; logged, rate-limited.
        quietly(`${party}\u0000unknown`, (suppressed) => logger.warn('message from a party without an account dropped', { party, suppressed }))
        return
      }
    } else {
      const gate = engine.admission.gate(party, account, sessionId)
      const verdict = gate.verify(msg, inbound.payload, inbound.properties)
      if (!verdict.ok) return engine.admission.refusePush(party, account, msg, inbound, gate, verdict)
    }
    const slot = parties.slot(party)
    if (busy(slot)) return enqueue(party, slot, { kind: 'push', msg, inbound })
    const continuesAfter = engine.admission.refusedPush(party, sessionId)?.lastMsgId
    const session = activate(slot, { party, sessionId, initiator: 'party', account, continuesAfter })
    await session.deliver(msg, inbound)
  }

  /**
   * binding.md §10: a party reached over HTTP speaks only in the responses to the device's own POSTs, each for the
   * party and session it was sent for. It cannot push, and anything in its name that comes through a broker
   * (where anyone allowed to publish on the device's topic can put it) is dropped: it would otherwise make the
   * device POST refusals or repeats to that server. Every other party's messages come through a broker, as
   * before. Its DM Notifications still come over MQTT (transparent.ts), and only open a session.
   */
  function onItsBinding(party: string, sessionId: string, inbound: InboundMessage): boolean {
    const { exchange } = inbound
    if (exchange !== undefined) {
      if (exchange.party === party && exchange.sessionId === sessionId) return true
      quietly(`${exchange.party}\u0000exchange`, (suppressed) =>
        logger.warn('HTTP response for another party or session dropped', { party: exchange.party, sessionId: exchange.sessionId, suppressed }))
      return false
    }
    const current = parties.peek(party)?.active
    const overHttp = current !== undefined && !current.ended ? current.overHttp : findAccount(deps.tree, party)?.httpUrl !== undefined
    if (!overHttp) return true
    quietly(`${party}\u0000not-http`, (suppressed) =>
      logger.warn('message for a party reached over HTTP came through the broker; dropped', { party, suppressed }))
    return false
  }

  /** A message with the SessionID of an ended session: a duplicate is answered again, anything else ignored. */
  async function answerEnded(party: string, replies: EndedSession['replies'], msg: SyncMLMessage, inbound: InboundMessage): Promise<void> {
    const repeat = replies.repeat(Number(msg.hdr.msgId), inbound.payload)
    if (repeat !== undefined && repeat !== 'exhausted') {
      logger.debug('duplicate of an ended session answered again', { party, sessionId: msg.hdr.sessionId })
      await deps.send(repeat).catch((error: unknown) => quietly(`${party}\u0000send`, (suppressed) => logger.warn('send failed', { party, error, suppressed })))
      return
    }
    quietly(`${party}\u0000ended`, (suppressed) => logger.info('message of an ended session ignored', { party, sessionId: msg.hdr.sessionId, suppressed }))
  }

  function reconnected(): void {
    if (stopping) return
    for (const [party, slot] of [...parties.entries()]) {
      if (busy(slot)) slot.active!.reconnected()
      // A retry is due as soon as the broker is back: its backoff counted the outage, not the party.
      else if (slot.retryTimer !== undefined) track(openSession(party, { alert: 1201 }))
    }
    for (const serverId of deps.state.serversWithPendingAlerts()) {
      const slot = parties.peek(serverId)
      // A server whose account is gone is left out quietly: openSession would warn about it on every reconnection.
      if ((slot !== undefined && busy(slot)) || findAccount(deps.tree, serverId) === undefined) continue
      track(openSession(serverId, { alert: 1201 }))
    }
  }

  async function receive(inbound: InboundMessage): Promise<void> {
    if (stopping) return
    if (inbound.channel !== 'dm') {
      logger.debug('non-DM message ignored by the session engine', { channel: inbound.channel })
      return
    }
    const decoded = decodeMessage(inbound.payload, inbound.contentType)
    if (!decoded.ok) {
      // binding.md §3: a message that cannot be answered at all is logged and dropped.
      quietly('\u0000undecodable', (suppressed) => logger.warn('undecodable message dropped', { code: decoded.error.code, at: decoded.error.at, suppressed }))
      return
    }
    try {
      await track(route(decoded.value, inbound))
    } catch (error) {
      logger.error('message handling failed', { error })
    }
  }

  /** A message of the party's running session is queued in that session at once (`route`), so its queue is the order. */
  function inOrder<T>(party: string, task: () => T): Promise<T> {
    const current = parties.peek(party)?.active
    if (current !== undefined && !current.ended) return current.inTurn(task)
    return new Promise((resolve) => resolve(task()))
  }

  return {
    receive,
    openSession: (serverId, request) => track(openSession(serverId, request)),
    async queueGenericAlert(serverId, alert) {
      const pending = alertQueue.enqueue(serverId, alert)
      await deps.state.save()
      return pending?.id
    },
    keepQueued: (type) => alertQueue.keep(type),
    registerAlert: (code, handler, options) => alerts.register(code, handler, options),
    reconnected,
    inOrder,
    async stop() {
      stopping = true
      stopped.abort()
      if (lazyFlush !== undefined) deps.clock.clearTimeout(lazyFlush)
      lazyFlush = undefined
      for (const slot of parties.all()) {
        cancelRetry(slot)
        slot.active?.stop()
        slot.queue.length = 0
      }
      await Promise.allSettled([...(inFlight ?? [])])
      await deps.tree.flush()
      if (deps.state.dirty) await deps.state.save()
    },
  }
}
