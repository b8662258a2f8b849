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
import type { Logger } from '../log.ts'
import type { InboundMessage, OutboundMessage, Transport, TransportEvents } from './port.ts'
import { TRANSPORT_TIMINGS } from './backoff.ts'
import { classifyInbound } from './inbound.ts'
import { openConnection, type MqttClient, type TlsMaterial } from './mqtt-client.ts'
import { brokerOrigin, deviceTopics, routeFor, STATUS_CHANNEL, topicFor } from './topics.ts'

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
  /** How many brokers other than the agent's own (from parties' AppAddr) stay connected at once. */
  maxExtraBrokers?: number
}

const DEFAULT_MAX_EXTRA_BROKERS = 4
const MQTT_URL = /^mqtts?:\/\//

interface Connection {
  client: MqttClient
  /** Rejecters of the sends in flight on this connection, so none is left hanging when it closes. */
  inFlight: Set<(error: Error) => void>
}

const defaultTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
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
  }
  const statusTopic = topicFor(options.prefix, options.deviceId, STATUS_CHANNEL)
  const expected = { prefix: options.prefix, deviceId: options.deviceId, maxPacketSize: options.maxPacketSize }

  let state: 'idle' | 'started' | 'stopping' | 'stopped' = 'idle'
  let events: TransportEvents | undefined
  let main: Connection | undefined
  /** Brokers named by parties' AppAddr, least recently used first. */
  const extra = new Map<string, Connection>()
  let online = false
  /**
   * Whether the device's own topics are subscribed on the current connection, and the sends waiting for that:
   * MQTT.js flushes its offline queue before the `connect` event that subscribes, so a message queued before
   * (Package 1 of the first session) would leave first and its answer arrive while the device hears nothing.
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

  const deliver = (topic: string, payload: Buffer, packet: Parameters<typeof classifyInbound>[3]) => {
    if (state !== 'started' || !events) return
    const result = classifyInbound(expected, topic, payload, packet)
    if (!result.ok) {
      if (result.reason === 'too-large') {
        log.warn('dropped inbound message over the maximum packet size', { topic, bytes: result.bytes, max: options.maxPacketSize })
      } else {
        log.warn('dropped inbound message on an unknown topic', { topic })
      }
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

  const extraConnection = (origin: string, address: string): Connection => {
    const url = new URL(address)
    const username = url.username === '' ? undefined : decodeURIComponent(url.username)
    const password = url.password === '' ? undefined : decodeURIComponent(url.password)
    // Pooled per broker and account, so two parties on one broker with different credentials stay apart.
    const key = username === undefined ? origin : `${origin} as ${username}`
    const existing = extra.get(key)
    if (existing) {
      extra.delete(key)
      extra.set(key, existing)
      return existing
    }
    const maxExtra = options.maxExtraBrokers ?? DEFAULT_MAX_EXTRA_BROKERS
    while (extra.size >= maxExtra) {
      const [oldestKey, oldest] = extra.entries().next().value as [string, Connection]
      extra.delete(oldestKey)
      log.info('closing least recently used broker connection', { broker: oldestKey })
      void close(oldest, TRANSPORT_TIMINGS.stopTimeoutMs, timers)
    }
    // The agent's own broker password never goes to a broker that a party named.
    const { client } = openConnection({
      ...common,
      url: origin,
      username,
      password,
      logger: log.child({ broker: origin }),
    })
    const connection: Connection = { client, inFlight: new Set() }
    log.info('opened connection to a party broker', { broker: origin })
    extra.set(key, connection)
    return connection
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
      const connection = origin === mainOrigin || address === undefined ? main : extraConnection(origin, address)
      const properties = {
        contentType: message.contentType,
        ...(message.properties && Object.keys(message.properties).length > 0 && { userProperties: message.properties }),
      }
      log.debug('publishing', { topic, bytes: message.payload.length })
      const out = () => publish(connection, topic, asBuffer(message.payload), { properties })
      return connection !== main || subscribed ? out() : whenSubscribed().then(out)
    },

    stop(): Promise<void> {
      if (stopping) return stopping
      stopping = stopConnections()
      return stopping
    },
  }
}
