/**
 * A scripted DM party on a broker: the engine under both the DM Server peer and the DM Gateway peer (a gateway
 * is a DM party whose account the device holds). It follows each session on its `dm` topic, judges and answers
 * credentials, sends the commands a test scripted, records everything, and can push a session (binding.md §3).
 */
import type { MqttClient } from 'mqtt'
import { hmacHeader, md5Digest, basicCred, nonceBytes, AUTH_TYPE_URI } from './auth.ts'
import { connectPeer, CONTENT_TYPE, publish, subscribe, topicFor, userProperties, disconnect } from './mqtt.ts'
import { forcedChallenge, judgeDevice, type AuthVerdict } from './party-auth.ts'
import { newSessionRecord, type GenericAlert, type PartySession } from './session-record.ts'
import { isHdrStatus, recordDeviceCommands, type HeaderAnswer, type SentLog } from './session-reader.ts'
import { describeMessage } from './summary.ts'
import { alert, buildMessage, parseMessage, type OutCommand, type OutCred, type ParsedCommand, type ParsedMessage, type ParseOutcome } from './syncml.ts'
import { resolveOptions, type Batch, type PartyOptions, type ResolvedOptions, type Script } from './party-options.ts'
import { Waiters } from './waiters.ts'
import { HttpEndpoint, type HttpReply } from './http-endpoint.ts'
import { looksLikeWbxml, parseWbxmlMessage, xmlToWbxml } from './wbxml.ts'

export type { Batch, PartyOptions, Script, TrafficEvent } from './party-options.ts'

interface CachedReply {
  payload: string | Uint8Array
  request: string | Uint8Array
  userProperties: Record<string, string>
}

interface SessionState {
  record: PartySession
  /** The nonce the device must use in this session (CLCRED side). */
  expectNonce: string
  /** The nonce we use in this session (SRVCRED side). */
  serverNonce: string
  nextMsgId: number
  replies: Map<string, CachedReply>
  sentCommands: SentLog[]
  authRetries: number
  /** Batches still to send; undefined until the script was asked. */
  plan: Batch[] | undefined
  forcedChallengeDone: boolean
  /** HTTP mode: our Cred goes until the device accepts it (212), and again after it refuses it (OMA's rule). */
  credWanted: boolean
}

export class Party {
  readonly sessions: PartySession[] = []
  /** Messages that could not be read as SyncML, with the reason. */
  readonly malformed: { payload: Uint8Array; error: string }[] = []
  /** Messages of sessions this party never had (answers to messages someone else sent in its name). */
  readonly strays: ParsedMessage[] = []
  /** The nonce the device must use at the start of its next session. */
  clientNonce: string
  /** The nonce we use at the start of our next session (and in DM Notifications). */
  serverNonce: string
  protected readonly opts: ResolvedOptions
  private client: MqttClient | undefined
  private readonly states = new Map<string, SessionState>()
  private readonly plans: Batch[][] = []
  private scriptFn: Script | undefined
  private readonly waiters = new Waiters()
  private chain: Promise<void> = Promise.resolve()
  private challengedOnce = false
  /** Whether the party's subscription is granted on its current connection (a broker restart takes it away). */
  private subscribed = false
  private nextPushId = 0x1000 + Math.floor(Math.random() * 0xd000)
  /** HTTP mode: the server the device POSTs to, and where the answer to the POST being handled goes. */
  private endpoint: HttpEndpoint | undefined
  private httpReply: HttpReply[] | undefined
  /** HTTP mode: SyncML messages that came over the broker instead (none should). */
  readonly overBroker: string[] = []

  constructor(options: PartyOptions) {
    this.opts = resolveOptions(options)
    this.clientNonce = options.clientNonce ?? ''
    this.serverNonce = options.serverNonce ?? ''
  }

  /** HTTP mode: the URL the device's account names (`http(s)://127.0.0.1:<port>/dm`). */
  get url(): string {
    if (!this.endpoint) throw new Error('not in HTTP mode')
    return this.endpoint.url
  }

  /** HTTP mode: every request the device made, with what was answered. */
  get requests(): HttpEndpoint['requests'] {
    if (!this.endpoint) throw new Error('not in HTTP mode')
    return this.endpoint.requests
  }

  /** HTTP mode: how many connections the device opened to us. */
  get connections(): number {
    if (!this.endpoint) throw new Error('not in HTTP mode')
    return this.endpoint.connections
  }

  /** HTTP mode: the next POSTs get these answers instead of the party's (a 503, a redirect, a huge body…). */
  fault(...answers: HttpEndpoint['faults']): void {
    if (!this.endpoint) throw new Error('not in HTTP mode')
    this.endpoint.faults.push(...answers)
  }

  async start(): Promise<void> {
    if (this.opts.http) {
      this.endpoint = await HttpEndpoint.start(this.opts.http, (body, contentType, props) => this.answerPost(body, contentType, props), () => this.changed())
    }
    const client = await connectPeer(this.opts.brokerUrl, { clientId: `peer-${this.opts.partyId}-${process.pid}-${Math.random().toString(16).slice(2, 8)}`, as: this.opts.partyId, ...this.opts.mqtt })
    this.client = client
    client.on('message', (topic, payload, packet) => {
      const props = packet.properties
      this.chain = this.chain
        .then(() => this.handle(topic, payload, props?.contentType, userProperties(props?.userProperties)))
        .catch((err: unknown) => this.trace('in', topic, `error: ${(err as Error).message}`))
    })
    await subscribe(client, this.topic(this.opts.partyId, 'dm'))
    this.subscribed = true
    // MQTT.js subscribes again by itself after a reconnection, but does not say when that is granted; a test that
    // goes on after a broker restart must know the party hears its topic again, so it asks once more and waits.
    client.on('close', () => {
      this.subscribed = false
    })
    client.on('connect', () => {
      subscribe(client, this.topic(this.opts.partyId, 'dm')).then(() => {
        this.subscribed = client.connected
        this.changed()
      }, () => undefined)
    })
  }

  /** Resolves once the party is connected and hears its topic (after a broker restart: connected again). */
  listening(timeoutMs = 10_000): Promise<true> {
    return this.waitFor(() => (this.subscribed || undefined), timeoutMs, 'subscription on the broker')
  }

  async stop(): Promise<void> {
    await this.chain
    await this.endpoint?.stop()
    if (this.client) await disconnect(this.client)
  }

  /** HTTP mode: one POST, handled like a message on the topic; its answer is the response (none: an empty body). */
  private answerPost(body: Buffer, contentType: string | undefined, props: Record<string, string>): Promise<HttpReply | undefined> {
    const done = this.chain.then(async () => {
      this.httpReply = []
      try {
        await this.handle('POST', body, contentType, props)
        return this.httpReply[0]
      } finally {
        this.httpReply = undefined
      }
    })
    this.chain = done.then(() => undefined, () => undefined)
    return done
  }

  /** Sets the script for device-opened sessions without a queued plan (none: such sessions close at once). */
  script(fn: Script | undefined): void {
    this.scriptFn = fn
  }

  /** The next session the device opens sends these batches, one a turn, then closes. */
  queueSession(...batches: Batch[]): void {
    this.plans.push(batches)
  }

  /** Pushes a session (binding.md §3): a new SessionID on the device's `dm` topic, with Cred. */
  async pushSession(commands: OutCommand[], options: { sessionId?: string; plan?: Batch[] } = {}): Promise<PartySession> {
    const sessionId = options.sessionId ?? this.newPushId()
    const st = this.newState(sessionId, 'push')
    st.plan = options.plan ? [...options.plan] : []
    st.record.turn = 1
    await this.send(st, this.opts.deviceId, commands)
    return st.record
  }

  /** Publishes anything on the device's `dm` topic (or another), for negative tests. */
  async rawSend(payload: string | Uint8Array, options: { topic?: string; contentType?: string; userProperties?: Record<string, string> } = {}): Promise<void> {
    const topic = options.topic ?? this.topic(this.opts.deviceId, 'dm')
    this.trace('out', topic, `raw ${typeof payload === 'string' ? payload.length : payload.byteLength} bytes`)
    await publish(this.mqtt(), topic, payload, {
      contentType: options.contentType ?? (typeof payload === 'string' ? CONTENT_TYPE.xml : CONTENT_TYPE.wbxml),
      userProperties: options.userProperties,
    })
  }

  /** Resolves with the first session (already recorded or to come) that satisfies `predicate`; closed ones by default. */
  waitForSession(predicate: (s: PartySession) => boolean = (s) => s.closed, timeoutMs = 10_000): Promise<PartySession> {
    return this.waitFor(() => this.sessions.find(predicate), timeoutMs, 'session')
  }

  /** Resolves with the first Generic Alert of `type` received in any session. */
  waitForGenericAlert(type: string, timeoutMs = 10_000): Promise<GenericAlert> {
    return this.waitFor(() => this.sessions.flatMap((s) => s.genericAlerts).find((a) => a.type === type), timeoutMs, `Generic Alert ${type}`)
  }

  waitFor<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return this.waiters.waitFor(probe, timeoutMs, `${this.opts.partyId}: ${what}`)
  }

  protected topic(locUri: string, channel: 'dm' | 'notification' | 'bootstrap'): string {
    return topicFor(locUri, channel, this.opts.topicPrefix)
  }

  protected mqtt(): MqttClient {
    if (!this.client) throw new Error('peer not started')
    return this.client
  }

  protected trace(direction: 'in' | 'out', topic: string, summary: string): void {
    this.opts.onTraffic?.({ direction, topic, summary })
  }

  private changed(): void {
    this.waiters.notify()
  }

  private newPushId(): string {
    do this.nextPushId = (this.nextPushId % 0xffff) + 1
    while (this.states.has(this.nextPushId.toString(16).toUpperCase()))
    return this.nextPushId.toString(16).toUpperCase()
  }

  private newState(sessionId: string, origin: 'device' | 'push'): SessionState {
    const st: SessionState = {
      record: newSessionRecord(sessionId, origin),
      expectNonce: this.clientNonce,
      serverNonce: this.serverNonce,
      nextMsgId: 1,
      replies: new Map(),
      sentCommands: [],
      authRetries: 0,
      plan: origin === 'device' ? this.plans.shift() : undefined,
      forcedChallengeDone: false,
      credWanted: true,
    }
    this.states.set(sessionId, st)
    this.sessions.push(st.record)
    return st
  }

  private decode(payload: Buffer, contentType: string | undefined): ParseOutcome {
    if (looksLikeWbxml(payload, contentType)) return parseWbxmlMessage(payload)
    return parseMessage(payload.toString('utf8'))
  }

  private async handle(topic: string, payload: Buffer, contentType: string | undefined, props: Record<string, string>): Promise<void> {
    if (this.endpoint && this.httpReply === undefined) {
      // binding.md §10: a server reached over HTTP hears the device on its POSTs alone.
      this.overBroker.push(topic)
      this.changed()
      return
    }
    const outcome = this.decode(payload, contentType)
    if (!outcome.ok) {
      this.malformed.push({ payload: new Uint8Array(payload), error: outcome.error })
      this.trace('in', topic, `malformed: ${outcome.error}`)
      this.changed()
      return
    }
    const msg = outcome.message
    this.trace('in', topic, describeMessage(msg))
    const opensSession = msg.commands.some((c) => c.name === 'Alert' && (c.data === '1200' || c.data === '1201'))
    let st = this.states.get(msg.hdr.sessionId)
    const cached = st?.replies.get(msg.hdr.msgId)
    if (st && cached && sameBytes(cached.request, payload)) {
      // At-least-once delivery (binding.md §3): answer a repeated message again, never act on it twice.
      st.record.duplicates++
      await this.publishReply(msg.hdr.source, cached.payload, cached.userProperties)
      this.changed()
      return
    }
    if (!st && !opensSession) {
      // A message of a session this party never had: the answer to someone else's message in its name (binding.md
      // §6: a refusal goes to the party the message named). Noted; never answered, and no nonce of it is taken.
      this.strays.push(msg)
      this.changed()
      return
    }
    if (!st || (st.record.closed && opensSession)) st = this.newState(msg.hdr.sessionId, 'device')
    const request = looksLikeWbxml(payload, contentType) ? new Uint8Array(payload) : payload.toString('utf8')
    st.record.received.push({ msgId: msg.hdr.msgId, message: msg, payload: request, userProperties: props })
    st.record.commands.push(...msg.commands)
    await this.respond(st, msg, payload, props, request)
    this.changed()
  }

  /** Judges the device's credentials in one message (binding.md §6: over MQTT every message carries them). */
  private verdict(st: SessionState, msg: ParsedMessage, payload: Uint8Array, props: Record<string, string>): AuthVerdict {
    const mode = this.opts.challenge407
    const firstOfDeviceSession = st.record.origin === 'device' && !st.forcedChallengeDone && !st.record.deviceAuthenticated
    if (firstOfDeviceSession && (mode === 'every' || (mode === 'once' && !this.challengedOnce))) {
      st.forcedChallengeDone = true
      this.challengedOnce = true
      return forcedChallenge(this.opts.authType)
    }
    // OMA's HTTP rule (binding.md §10): once the device has authenticated, the connection carries the session.
    if (this.endpoint && st.record.deviceAuthenticated && !msg.hdr.cred && this.opts.authType !== 'hmac') return { ok: true, code: '200' }
    return judgeDevice(this.opts, msg, st.expectNonce, payload, props['x-syncml-hmac'])
  }

  private async respond(st: SessionState, msg: ParsedMessage, payload: Uint8Array, props: Record<string, string>, request: string | Uint8Array): Promise<void> {
    const rec = st.record
    const hdrStatus = msg.commands.find(isHdrStatus)?.data
    if (hdrStatus === '401' || hdrStatus === '407') {
      // binding.md §6: the device refused our message (a refusal carries no Cred of its own, so there is nothing
      // to judge). We send it again, as it was, with the next MsgID and a Cred for the refusal's nonce; or, with
      // nothing better to offer, the session ends here, unanswered.
      this.applyHeaderAnswer(st, recordDeviceCommands(rec, msg, st.sentCommands))
      const last = rec.sent.at(-1)?.commands
      if (!this.opts.sendCred || st.authRetries >= this.opts.maxAuthRetries || last === undefined) {
        rec.closed = true
        return
      }
      st.authRetries++
      const again = await this.send(st, msg.hdr.source, last)
      st.replies.set(msg.hdr.msgId, { ...again, request })
      return
    }
    const auth = this.verdict(st, msg, payload, props)
    const statuses: OutCommand[] = [
      {
        name: 'Status',
        msgRef: msg.hdr.msgId,
        cmdRef: '0',
        cmd: 'SyncHdr',
        targetRefs: [msg.hdr.target],
        sourceRefs: [msg.hdr.source],
        chal: auth.chal,
        data: auth.code,
      },
    ]
    let batch: OutCommand[] = []
    if (!auth.ok) {
      // Our refusal authenticates with the nonce the device's message handed us, whatever we think of its Cred.
      const next = msg.commands.find(isHdrStatus)?.chal?.nextNonce
      if (next !== undefined) st.serverNonce = next
      rec.deviceAuthFailures++
      // Commands of an unauthenticated message are neither executed nor recorded as accepted (OMA DM Protocol 1.2:
      // on authentication failure the answer holds only Status).
      if (rec.deviceAuthFailures > 3) rec.closed = true
    } else {
      rec.deviceAuthenticated = true
      this.applyHeaderAnswer(st, recordDeviceCommands(rec, msg, st.sentCommands))
      for (const c of msg.commands) {
        if (c.name === 'Status' || c.noResp || (c.name === 'Results' && !this.opts.statusForResults)) continue
        statuses.push({ name: 'Status', msgRef: msg.hdr.msgId, cmdRef: c.cmdId, cmd: c.name, data: this.statusCode(rec, c) })
      }
      if (rec.aborted) {
        rec.closed = true
        this.changed()
        return
      }
      if (!msg.final) batch = [alert('1222')] // NEXT MESSAGE: the device's package continues in another message
      else {
        batch = this.nextBatch(st) ?? []
        if (batch.length) {
          rec.turn++
        } else rec.closed = true
      }
    }
    // A message holding only the Status for the SyncHdr is not sent (OMA DM Protocol 1.2,
    // packages: "the entire response package MUST NOT be sent"), unless it challenges.
    if (auth.ok && statuses.length === 1 && batch.length === 0) return
    // The nonces our answer hands the device count only once it goes out.
    if (auth.sessionNonce !== undefined) st.expectNonce = auth.sessionNonce
    if (auth.storedNonce !== undefined) this.clientNonce = auth.storedNonce
    const reply = await this.send(st, msg.hdr.source, [...statuses, ...batch])
    st.replies.set(msg.hdr.msgId, { ...reply, request })
  }

  /**
   * Takes the nonce the device gave us. Over MQTT it serves our next message of this session and, until another
   * comes, our next session (binding.md §6).
   */
  private applyHeaderAnswer(st: SessionState, answer: HeaderAnswer): void {
    if (answer.code === '212') st.credWanted = false
    else if (answer.code === '401' || answer.code === '407') st.credWanted = true
    if (answer.nextNonce === undefined) return
    this.serverNonce = answer.nextNonce
    st.serverNonce = answer.nextNonce
  }

  private statusCode(rec: PartySession, c: ParsedCommand): string {
    if (c.name !== 'Alert' || c.data !== '1226' || !this.opts.genericAlertStatus) return '200'
    const first = rec.genericAlerts.find((a) => a.type === (c.items[0]?.meta.type ?? ''))
    return first ? this.opts.genericAlertStatus(first) : '200'
  }

  private nextBatch(st: SessionState): OutCommand[] | undefined {
    st.plan ??= asBatches(this.scriptFn?.(st.record))
    const batch = st.plan.shift()
    return typeof batch === 'function' ? batch(st.record) : batch
  }

  private credFor(st: SessionState): OutCred | undefined {
    const { authType, sendCred, serverName, serverPassword } = this.opts
    if (!sendCred || authType === 'hmac' || (this.endpoint && !st.credWanted)) return undefined
    const data = authType === 'basic' ? basicCred(serverName, serverPassword) : md5Digest(serverName, serverPassword, nonceBytes(st.serverNonce))
    return { type: AUTH_TYPE_URI[authType], format: 'b64', data }
  }

  private async send(st: SessionState, to: string, commands: OutCommand[]): Promise<{ payload: string | Uint8Array; userProperties: Record<string, string> }> {
    const msgId = String(st.nextMsgId++)
    const respUri = this.opts.http?.respUri?.(st.record.sessionId)
    const hdr = { sessionId: st.record.sessionId, msgId, target: to, source: this.opts.partyId, locName: this.opts.serverName, cred: this.credFor(st), maxMsgSize: this.opts.maxMsgSize, respUri }
    const built = buildMessage(hdr, commands)
    st.sentCommands.push({ msgId, sent: built.sent })
    st.record.sent.push({ msgId, xml: built.xml, commands })
    const payload = this.opts.encoding === 'wbxml' ? xmlToWbxml(built.xml) : built.xml
    const userProperties: Record<string, string> = {}
    if (this.opts.authType === 'hmac' && this.opts.sendCred) {
      const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload
      userProperties['x-syncml-hmac'] = hmacHeader(this.opts.serverName, this.opts.serverPassword, nonceBytes(st.serverNonce), bytes)
    }
    const parsed = parseMessage(built.xml)
    if (parsed.ok) this.trace('out', this.topic(to, 'dm'), describeMessage(parsed.message))
    await this.publishReply(to, payload, userProperties)
    return { payload, userProperties }
  }

  private async publishReply(to: string, payload: string | Uint8Array, props: Record<string, string>): Promise<void> {
    const contentType = typeof payload === 'string' ? CONTENT_TYPE.xml : CONTENT_TYPE.wbxml
    if (this.httpReply !== undefined) {
      this.httpReply.push({ payload, contentType, headers: props })
      return
    }
    await publish(this.mqtt(), this.topic(to, 'dm'), payload, { contentType, userProperties: props })
  }
}

function asBatches(planned: OutCommand[] | Batch[] | undefined): Batch[] {
  if (!planned || planned.length === 0) return []
  const first = planned[0]
  return Array.isArray(first) || typeof first === 'function' ? (planned as Batch[]) : [planned as OutCommand[]]
}

function sameBytes(a: string | Uint8Array, b: Buffer): boolean {
  return typeof a === 'string' ? b.toString('utf8') === a : Buffer.compare(Buffer.from(a), b) === 0
}
