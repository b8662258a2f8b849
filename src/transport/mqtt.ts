/**
 * The MQTT 5 binding of binding.md §2 behind the transport port: the device's own topics in, one topic per
 * party out, a retained `online` / `offline` status, QoS 1 throughout.
 *
 * Every connection starts clean and subscribes again explicitly. A persistent broker session would also keep
 * what arrives during a short outage, but end-to-end delivery is the sessions' job anyway (binding.md §3: a
 * sender that gets no answer sends again), and a clean start means the device's state on the broker after
 * every connection is exactly what this module asked for: no subscriptions left over from an older
 * configuration, no backlog of stale notifications replayed long after a long outage.
 */
import { QuietLog } from '../rate-limit.ts'
import { createHash } from 'node:crypto'
import type { Logger } from '../log.ts'
import type { InboundMessage, OutboundMessage, Transport, TransportEvents } from '../session/port.ts'
import { TRANSPORT_TIMINGS } from './backoff.ts'
import { classifyInbound } from './inbound.ts'
import { openConnection, type MqttClient, type TlsMaterial } from './mqtt-client.ts'
import { brokerOrigin, deviceTopics, publishProperties, routeFor, STATUS_CHANNEL, topicFor } from './topics.ts'

export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export interface MqttTransportOptions extends TlsMaterial {
  /** The agent's broker, `mqtt://host[:port]` or `mqtts://host[:port]`. */
  url: string
  username?: string
  password?: string
  /** `ca`, `cert`, `key`: PEM contents (not paths); they serve every `mqtts://` broker, AppAddr ones too. */
  clientId: string
  keepaliveSeconds: number
  prefix: string
  deviceId: string
  maxPacketSize: number
  logger: Logger
  /** Jitter source of the reconnection backoff, in [0, 1). */
  random?: () => number
  /** Timers of this module's own deadlines (stop). */
  timers?: Timers
  reconnect?: { baseMs?: number; capMs?: number }
  /** How long a connection attempt may take to its CONNACK (`TRANSPORT_TIMINGS`). */
  connectTimeoutMs?: number
  /** How many brokers other than the agent's own (from parties' AppAddr) stay connected at once. */
  maxExtraBrokers?: number
  /** How long a connection to a party's AppAddr broker stays open without a send (`TRANSPORT_TIMINGS`). */
  partyBrokerIdleMs?: number
}

const DEFAULT_MAX_EXTRA_BROKERS = 4
const MQTT_URL = /^mqtts?:\/\//i

interface Connection {
  client: MqttClient
  /** Rejecters of the sends in flight on this connection, so none is left hanging when it closes. */
  inFlight: Set<(error: Error) => void>
}

/** A connection to a broker that a party's AppAddr names, one per account, broker and user name. */
interface PartyConnection extends Connection {
  key: string
  origin: string
  clientId: string
  /** The timer that closes it once idle, set again by every send. */
  idle: unknown
}

const defaultTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}

/**
 * binding.md §6: every connection has its own ClientId, so that one to an AppAddr broker that is in fact the
 * device's own (`localhost` for `127.0.0.1`) never takes the main session over. Named after the account; a
 * message that does not name it is named after its party (a short hash of the LocURI, stable and free of the
 * characters some brokers refuse).
 */
function partyClientId(clientId: string, message: OutboundMessage): string {
  const name = message.account ?? createHash('sha256').update(message.to).digest('hex').slice(0, 12)
  return `${clientId}/${name}`
}

interface Credentials {
  username?: string
  password?: string
}

/** The user name and password of an AppAddr (`mqtt://user:password@host`), percent-decoded; undefined if malformed. */
function credentialsOf(address: string): Credentials | undefined {
  try {
    const url = new URL(address)
    return {
      ...(url.username !== '' && { username: decodeURIComponent(url.username) }),
      ...(url.password !== '' && { password: decodeURIComponent(url.password) }),
    }
  } catch {
    return undefined
  }
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** Publishes at QoS 1 and settles on PUBACK, or when the connection is closed for good. */
function publish(connection: Connection, topic: string, payload: Buffer | string, options: object): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (error?: Error | null) => {
      connection.inFlight.delete(reject)
      if (error) reject(error)
      else resolve()
    }
    connection.inFlight.add(reject)
    connection.client.publish(topic, payload, { qos: 1, ...options }, (error) => settle(error))
  })
}

const closed = () => new Error('mqtt: connection closed')

/** Ends a connection within `timeoutMs`: DISCONNECT when connected (so the broker keeps the will), else at once. */
async function close(connection: Connection, timeoutMs: number, timers: Timers): Promise<void> {
  const { client } = connection
  if (!client.connected) await new Promise((resolve) => client.end(true, resolve))
  else if (!(await within(new Promise((resolve) => client.end(false, resolve)), timeoutMs, timers))) client.stream.destroy()
  for (const reject of connection.inFlight) reject(closed())
  connection.inFlight.clear()
}

/** Resolves true when `promise` settles within `ms`, false once `ms` have passed; never rejects. */
function within(promise: Promise<unknown>, ms: number, timers: Timers): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = timers.setTimeout(() => resolve(false), ms)
    const done = () => {
      timers.clearTimeout(timer)
      resolve(true)
    }
    promise.then(done, done)
  })
}

export function createMqttTransport(options: MqttTransportOptions): Transport {
  // Options are checked before any I/O.
  const mainOrigin = brokerOrigin(options.url)
  if (mainOrigin === undefined) throw new TypeError('mqtt: url must be an mqtt:// or mqtts:// URL')
  const log = options.logger.child({ module: 'mqtt' })
  const timers = options.timers ?? defaultTimers
  /** What every connection gets, to the agent's own broker and to those of parties' AppAddr. */
  const common = {
    tls: { ca: options.ca, cert: options.cert, key: options.key },
    clientId: options.clientId,
    keepaliveSeconds: options.keepaliveSeconds,
    reconnect: {
      baseMs: options.reconnect?.baseMs ?? TRANSPORT_TIMINGS.reconnectBaseMs,
      capMs: options.reconnect?.capMs ?? TRANSPORT_TIMINGS.reconnectCapMs,
      random: options.random,
    },
    ...(options.connectTimeoutMs !== undefined && { connectTimeoutMs: options.connectTimeoutMs }),
  }
  const statusTopic = topicFor(options.prefix, options.deviceId, STATUS_CHANNEL)
  const expected = { prefix: options.prefix, deviceId: options.deviceId, maxPacketSize: options.maxPacketSize }

  let state: 'idle' | 'started' | 'stopping' | 'stopped' = 'idle'
  let events: TransportEvents | undefined
  let main: Connection | undefined
  /** Brokers named by parties' AppAddr, least recently used first. */
  const extra = new Map<string, PartyConnection>()
  const idleMs = options.partyBrokerIdleMs ?? TRANSPORT_TIMINGS.partyBrokerIdleMs
  let online = false
  /**
   * Whether the device's own topics are subscribed on the current connection, and the sends waiting for that:
   * MQTT.js flushes its offline queue before the `connect` event that subscribes, so a message queued before
   * (Package 1 of the first session) would leave first and its answer arrive while the device hears nothing.
   * A publish already in flight when a connection drops is MQTT.js's own to send again, and it does so on the
   * next connection before that subscription: its answer can be missed, and the session sends the message again
   * soon after the reconnection (`SessionManager.reconnected`).
   */
  let subscribed = false
  const waitingForSubscription = new Set<{ resolve: () => void; reject: (error: Error) => void }>()
  const whenSubscribed = (): Promise<void> =>
    subscribed ? Promise.resolve() : new Promise((resolve, reject) => waitingForSubscription.add({ resolve, reject }))
  let stopping: Promise<void> | undefined
  /** Bumped on every connect and close, so a late callback of an older connection does nothing. */
  let generation = 0

  const notify = (name: 'online' | 'offline') => {
    try {
      events?.[name]()
    } catch (error) {
      log.error(`${name} handler failed`, { error })
    }
  }

  const drops = new QuietLog(1000, 4)
  const deliver = (topic: string, payload: Buffer, packet: Parameters<typeof classifyInbound>[3]) => {
    if (state !== 'started' || !events) return
    const result = classifyInbound(expected, topic, payload, packet)
    if (!result.ok) {
      // Anyone on the broker can send these: a line a second for each kind, with the count of the rest.
      drops.note(result.reason, Date.now(), (suppressed) => {
        if (result.reason === 'too-large') {
          log.warn('dropped inbound message over the maximum packet size', { topic, bytes: result.bytes, max: options.maxPacketSize, suppressed })
        } else {
          log.warn('dropped inbound message on an unknown topic', { topic, suppressed })
        }
      })
      return
    }
    const message: InboundMessage = result.message
    try {
      events.message(message)
    } catch (error) {
      log.error('message handler failed', { channel: message.channel, error })
    }
  }

  const onConnect = (connection: Connection, connected: () => void) => {
    const current = ++generation
    const { client } = connection
    log.info('connected', { broker: mainOrigin })
    client.subscribe(deviceTopics(options.prefix, options.deviceId), { qos: 1 }, (error, granted) => {
      // A stop begun while the SUBACK was on its way has published `offline`; a retained `online` after it would
      // show a stopped device as online to everyone who subscribes later.
      if (current !== generation || state !== 'started') return
      const refused = error !== null || (granted ?? []).some((grant) => grant.qos !== 1 && grant.qos !== 0)
      if (refused) {
        // A device that cannot hear its parties is not online: drop the connection and try again later.
        log.error('subscription refused', { error: error?.message, granted: granted?.map((grant) => grant.qos) })
        client.stream.destroy()
        return
      }
      subscribed = true
      for (const waiter of waitingForSubscription) waiter.resolve()
      waitingForSubscription.clear()
      publish(connection, statusTopic, 'online', { retain: true }).then(
        () => {
          if (current !== generation || state !== 'started') return
          connected()
          online = true
          notify('online')
        },
        (publishError: Error) => log.warn('could not publish online status', { error: publishError.message }),
      )
    })
  }

  const onClose = () => {
    generation++
    subscribed = false
    if (!online) return
    online = false
    if (state === 'started') log.warn('disconnected', { broker: mainOrigin })
    notify('offline')
  }

  /** Takes a party connection out of the pool and closes it. */
  const retire = (connection: PartyConnection, why: string) => {
    timers.clearTimeout(connection.idle)
    extra.delete(connection.key)
    log.info(why, { broker: connection.origin, clientId: connection.clientId })
    void close(connection, TRANSPORT_TIMINGS.stopTimeoutMs, timers)
  }

  /**
   * Closes the connection once no send has used it for `idleMs`. A send still unacknowledged by then (a broker
   * that has been unreachable all along) is rejected: its session gave up long before.
   */
  const armIdle = (connection: PartyConnection) => {
    timers.clearTimeout(connection.idle)
    connection.idle = timers.setTimeout(() => {
      if (extra.get(connection.key) === connection) retire(connection, 'closing idle broker connection')
    }, idleMs)
  }

  const partyConnection = (origin: string, credentials: Credentials, clientId: string): PartyConnection => {
    const { username, password } = credentials
    // Per account, broker and user name, so two parties on one broker with different credentials stay apart.
    const key = JSON.stringify([clientId, origin, username ?? null])
    const existing = extra.get(key)
    if (existing) {
      extra.delete(key)
      extra.set(key, existing)
      return existing
    }
    // The account's earlier broker or credentials (its AppAddr changed): one connection per ClientId, always.
    for (const other of [...extra.values()]) if (other.clientId === clientId) retire(other, 'closing the account\'s previous broker connection')
    const maxExtra = options.maxExtraBrokers ?? DEFAULT_MAX_EXTRA_BROKERS
    while (extra.size >= maxExtra) retire(extra.values().next().value as PartyConnection, 'closing least recently used broker connection')
    // The agent's own broker password never goes to a broker that a party named.
    const { client } = openConnection({
      ...common,
      url: origin,
      clientId,
      username,
      password,
      logger: log.child({ broker: origin }),
    })
    const connection: PartyConnection = { client, inFlight: new Set(), key, origin, clientId, idle: undefined }
    log.info('opened connection to a party broker', { broker: origin, clientId })
    extra.set(key, connection)
    return connection
  }

  /**
   * The connection a message to `address` (an `mqtt://` / `mqtts://` AppAddr) goes out on: the main one when
   * the AppAddr names the agent's own broker (same origin) with no user name or the agent's own; one of its own
   * otherwise. A different user name on the agent's broker is another identity there, which the broker's ACL may
   * let reach topics the device's own may not, so it is honoured rather than folded into the main session.
   */
  const connectionFor = (main: Connection, origin: string, address: string, message: OutboundMessage): Connection | string => {
    // An address that names no broker (`mqtt://` alone) leaves the party on the default route, like no address.
    if (brokerOrigin(address) === undefined) return main
    const credentials = credentialsOf(address)
    if (credentials === undefined) return 'address has a malformed user name or password'
    if (origin === mainOrigin && (credentials.username === undefined || credentials.username === options.username)) return main
    return partyConnection(origin, credentials, partyClientId(options.clientId, message))
  }

  async function stopConnections(): Promise<void> {
    if (state !== 'started' || !main) {
      state = 'stopped'
      return
    }
    state = 'stopping'
    for (const waiter of waitingForSubscription) waiter.reject(closed())
    waitingForSubscription.clear()
    const connection = main
    if (connection.client.connected) {
      // Retained, so anyone who subscribes later still learns the device is gone (binding.md §2).
      await within(publish(connection, statusTopic, 'offline', { retain: true }), TRANSPORT_TIMINGS.stopTimeoutMs, timers)
    }
    const connections = [connection, ...extra.values()]
    for (const party of extra.values()) timers.clearTimeout(party.idle)
    extra.clear()
    await Promise.all(connections.map((c) => close(c, TRANSPORT_TIMINGS.stopTimeoutMs, timers)))
    onClose()
    state = 'stopped'
    log.info('stopped')
  }

  return {
    async start(handlers: TransportEvents): Promise<void> {
      if (state !== 'idle') throw new Error(`mqtt: cannot start a transport that is ${state}`)
      state = 'started'
      events = handlers
      const { client, connected } = openConnection({
        ...common,
        url: options.url,
        username: options.username,
        password: options.password,
        maxPacketSize: options.maxPacketSize,
        // binding.md §2: the broker announces `offline` for the device when it goes away uncleanly.
        will: { topic: statusTopic, payload: 'offline', retain: true },
        logger: log,
      })
      const connection: Connection = { client, inFlight: new Set() }
      main = connection
      client.on('connect', () => onConnect(connection, connected))
      client.on('close', onClose)
      client.on('message', (topic, payload, packet) => deliver(topic, payload, packet))
    },

    send(message: OutboundMessage): Promise<void> {
      if (state !== 'started' || !main) return Promise.reject(new Error(`mqtt: cannot send, transport is ${state}`))
      const address = message.address !== undefined && MQTT_URL.test(message.address) ? message.address : undefined
      const routed = routeFor({ prefix: options.prefix, mainOrigin, to: message.to, ...(address && { address }) })
      if (!routed.ok) return Promise.reject(new Error(`mqtt: cannot route to ${message.to}: ${routed.reason}`))
      const { origin, topic } = routed.route
      const connection = address === undefined ? main : connectionFor(main, origin, address, message)
      if (typeof connection === 'string') return Promise.reject(new Error(`mqtt: cannot route to ${message.to}: ${connection}`))
      const properties = publishProperties(message)
      log.debug('publishing', { topic, bytes: message.payload.length })
      const out = () => publish(connection, topic, asBuffer(message.payload), { properties })
      if (connection === main) return subscribed ? out() : whenSubscribed().then(out)
      armIdle(connection as PartyConnection)
      return out()
    },

    stop(): Promise<void> {
      if (stopping) return stopping
      stopping = stopConnections()
      return stopping
    },
  }
}
