/**
 * The MQTT 5 binding of binding.md §2 behind the sessions' port: the device's own topics in, one topic per party
 * out (`send.ts`), a retained `online` / `offline` status, QoS 1 throughout. Brokers that parties' AppAddr name
 * get connections of their own (`party-brokers.ts`).
 *
 * Every connection starts clean and subscribes again explicitly. A persistent broker session would also keep
 * what arrives during a short outage, but end-to-end delivery is the sessions' job anyway (binding.md §3: a
 * sender that gets no answer sends again), and a clean start means the device's state on the broker after
 * every connection is exactly what this module asked for: no subscriptions left over from an older
 * configuration, no backlog of stale notifications replayed long after a long outage.
 */
import type { Logger } from '../../log.ts'
import type { OutboundMessage, Transport, TransportEvents } from '../../session/port.ts'
import { TRANSPORT_TIMINGS } from '../backoff.ts'
import { close, closed, defaultTimers, publishQos1, within, type Connection, type Timers } from '../connection.ts'
import { classifyInbound, inboundDropLog } from '../inbound.ts'
import { openConnection, type TlsMaterial } from '../mqtt-client.ts'
import { credentialsOf, partyBrokers } from '../party-brokers.ts'
import { SendGate } from '../send-gate.ts'
import { sendOverMqtt, type ConnectionFor, type OwnConnection } from '../send.ts'
import { brokerOrigin, deviceTopics, STATUS_CHANNEL, topicFor } from '../topics.ts'

export type { Timers }

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
  let main: OwnConnection | undefined
  let online = false
  let stopping: Promise<void> | undefined
  /** Bumped on every connect and close, so a late callback of an older connection does nothing. */
  let generation = 0
  // The agent's own broker password never goes to a broker that a party named.
  const parties = partyBrokers(options, timers, log, (origin, { username, password }, clientId) =>
    openConnection({ ...common, url: origin, clientId, username, password, logger: log.child({ broker: origin }) }).client)

  const notify = (name: 'online' | 'offline') => {
    try {
      events?.[name]()
    } catch (error) {
      log.error(`${name} handler failed`, { error })
    }
  }

  const dropped = inboundDropLog(log, options.maxPacketSize)
  const deliver = (topic: string, payload: Buffer, packet: Parameters<typeof classifyInbound>[3]) => {
    if (state !== 'started' || !events) return
    const result = classifyInbound(expected, topic, payload, packet)
    if (!result.ok) return dropped(topic, result)
    try {
      events.message(result.message)
    } catch (error) {
      log.error('message handler failed', { channel: result.message.channel, error })
    }
  }

  const onConnect = (connection: Connection, gate: SendGate, connected: () => void) => {
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
      gate.release()
      publishQos1(connection, statusTopic, 'online', { retain: true }).then(
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
    if (main) main.gate.subscribed = false
    if (!online) return
    online = false
    if (state === 'started') log.warn('disconnected', { broker: mainOrigin })
    notify('offline')
  }

  /**
   * The device's own connection (undefined) when the AppAddr names the agent's own broker (same origin) with no
   * user name or the agent's own; one of the party's otherwise. A different user name on the agent's broker is another identity there,
   * which the broker's ACL may let reach topics the device's own may not, so it is honoured rather than folded
   * into the main session. An address that names no broker (`mqtt://` alone) leaves the party on the default
   * route, like no address.
   */
  const connectionFor: ConnectionFor = (route, message) => {
    log.debug('publishing', { topic: route.topic, bytes: message.payload.length })
    const { address } = message
    if (address === undefined || brokerOrigin(address) === undefined) return undefined
    const credentials = credentialsOf(address)
    if (credentials === undefined) return 'address has a malformed user name or password'
    if (route.origin === mainOrigin && (credentials.username === undefined || credentials.username === options.username)) return undefined
    return parties.connectionFor(route.origin, credentials, message)
  }

  async function stopConnections(): Promise<void> {
    if (state !== 'started' || !main) {
      state = 'stopped'
      return
    }
    state = 'stopping'
    main.gate.release(closed())
    const { connection } = main
    if (connection.client.connected) {
      // Retained, so anyone who subscribes later still learns the device is gone (binding.md §2).
      await within(publishQos1(connection, statusTopic, 'offline', { retain: true }), TRANSPORT_TIMINGS.stopTimeoutMs, timers)
    }
    await Promise.all([connection, ...parties.drain()].map((c) => close(c, TRANSPORT_TIMINGS.stopTimeoutMs, timers)))
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
      const gate = new SendGate()
      main = { prefix: options.prefix, mainOrigin, connection, gate }
      client.on('connect', () => onConnect(connection, gate, connected))
      client.on('close', onClose)
      client.on('message', deliver)
    },

    send(message: OutboundMessage): Promise<void> {
      if (state !== 'started' || !main) return Promise.reject(new Error(`mqtt: cannot send, transport is ${state}`))
      return sendOverMqtt(message, main, connectionFor)
    },

    stop(): Promise<void> {
      stopping ??= stopConnections()
      return stopping
    },
  }
}
