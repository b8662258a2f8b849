/**
 * One MQTT 5 connection (or a small pool) carrying many devices' topics (binding.md §2), for a fleet of agent
 * engines in one process. Each device gets its own `Transport` port; inbound PUBLISHes are dispatched by the
 * device LocURI in the topic, so the engines never see each other's traffic.
 *
 * Two topic plans: `each` subscribes to every device's three inbound topics (batched into few SUBSCRIBE
 * packets), so the broker delivers only what is for a simulated device; `wildcard` subscribes to
 * `<prefix>/+/dm`, `/+/notification` and `/+/bootstrap` once, which is cheaper to set up but also brings in
 * every party's traffic on that broker, dropped here.
 *
 * What one shared connection cannot do per device: a will. Each device's retained `online` is published once
 * its topics are subscribed, and `offline` on a clean stop; after a crash the broker announces nothing for
 * the devices. Parties reached through another broker (an `mqtt://` AppAddr elsewhere) are not supported.
 *
 * What it asks of the broker: to queue a QoS 1 message for every device of a connection at once (a gateway
 * detecting them all). mosquitto queues 1000 per client by default and drops the rest without a word to the
 * sender ("Outgoing messages are being dropped" in its log); the sessions then wait for their time-outs.
 */
import type { Logger } from '../log.ts'
import { classifyInbound, inboundDropLog } from './inbound.ts'
import { openConnection, type MqttClient, type TlsMaterial } from './mqtt-client.ts'
import { TRANSPORT_TIMINGS } from './backoff.ts'
import type { Transport } from '../session/port.ts'
import { publishQos1 } from './connection.ts'
import { DevicePort, type Hub, type Pool } from './shared-mqtt-port.ts'
import { brokerOrigin, deviceTopics, INBOUND_CHANNELS, STATUS_CHANNEL, topicFor } from './topics.ts'

export type TopicPlan = 'each' | 'wildcard'

export interface SharedMqttOptions extends TlsMaterial {
  url: string
  username?: string
  password?: string
  /** Connection `k` of the pool uses `<clientIdPrefix><k>`. */
  clientIdPrefix: string
  keepaliveSeconds: number
  prefix: string
  maxPacketSize: number
  /** Pool size; device `i` (in order of `port()` calls) rides connection `i mod connections`. */
  connections?: number
  topicPlan?: TopicPlan
  logger: Logger
}

export interface SharedMqtt {
  /** The transport port of one device; call once per device. */
  port(deviceId: string): Transport
  /** Publishes every started device's `offline` and closes the pool. */
  stop(): Promise<void>
}

/** Topic filters per SUBSCRIBE packet: keeps each packet well under any broker's packet limit. */
const FILTERS_PER_SUBSCRIBE = 600
/** Retained status publishes in flight per connection at once, so a fleet's `online` burst stays paced. */
const STATUS_BATCH = 500

function subscribeAll(client: MqttClient, filters: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    client.subscribe(filters, { qos: 1 }, (error, granted) => {
      if (error) return reject(error)
      const refused = (granted ?? []).filter((grant) => grant.qos !== 0 && grant.qos !== 1)
      if (refused.length > 0) return reject(new Error(`mqtt: ${refused.length} subscriptions refused`))
      resolve()
    })
  })
}

async function inBatches<T>(items: T[], size: number, run: (batch: T[]) => Promise<unknown>): Promise<void> {
  for (let start = 0; start < items.length; start += size) await run(items.slice(start, start + size))
}

export function createSharedMqtt(options: SharedMqttOptions): SharedMqtt {
  const mainOrigin = brokerOrigin(options.url)
  if (mainOrigin === undefined) throw new TypeError('mqtt: url must be an mqtt:// or mqtts:// URL')
  const log = options.logger.child({ module: 'shared-mqtt' })
  const plan = options.topicPlan ?? 'each'
  const size = Math.max(1, Math.floor(options.connections ?? 1))
  const tls: TlsMaterial = {
    ...(options.ca !== undefined && { ca: options.ca }),
    ...(options.cert !== undefined && { cert: options.cert }),
    ...(options.key !== undefined && { key: options.key }),
  }
  const byTopicLevel = new Map<string, DevicePort>()
  const pools: Pool[] = []
  let added = 0
  let stopping: Promise<void> | undefined

  const announce = async (pool: Pool, entries: DevicePort[], generation: number) => {
    await inBatches(entries, STATUS_BATCH, (batch) =>
      Promise.all(
        batch.map((entry) =>
          publishQos1(pool, topicFor(options.prefix, entry.deviceId, STATUS_CHANNEL), 'online', { retain: true }).then(
            () => {
              if (generation === pool.generation && !stopping) entry.events?.online()
            },
            (error: Error) => log.warn('could not publish online status', { deviceId: entry.deviceId, error: error.message }),
          ),
        ),
      ),
    )
  }

  /** Subscribes the given devices on the pool's current connection, then tells each it is online. */
  const subscribeDevices = async (pool: Pool, entries: DevicePort[]) => {
    const generation = pool.generation
    try {
      if (plan === 'each') {
        const filters = entries.flatMap((entry) => deviceTopics(options.prefix, entry.deviceId))
        await inBatches(filters, FILTERS_PER_SUBSCRIBE, (batch) => subscribeAll(pool.client, batch))
      }
    } catch (error) {
      if (stopping || generation !== pool.generation) return
      // A pool that cannot hear its devices is not online: drop the connection and try again later.
      log.error('subscription refused', { error: (error as Error).message })
      pool.client.stream.destroy()
      return
    }
    if (generation !== pool.generation) return
    for (const entry of entries) entry.release()
    await announce(pool, entries, generation)
  }

  const flush = (pool: Pool) => {
    pool.flushQueued = false
    if (!pool.connected || pool.pending.length === 0) return
    const entries = pool.pending
    pool.pending = []
    void subscribeDevices(pool, entries)
  }

  const queueFlush = (pool: Pool) => {
    if (pool.flushQueued) return
    pool.flushQueued = true
    // One turn later, so that devices started in the same burst share SUBSCRIBE packets.
    setImmediate(() => flush(pool))
  }

  const dropped = inboundDropLog(log, options.maxPacketSize)
  const dispatch = (topic: string, payload: Buffer, packet: Parameters<typeof classifyInbound>[3]) => {
    if (stopping) return
    const rest = topic.startsWith(options.prefix + '/') ? topic.slice(options.prefix.length + 1) : undefined
    const level = rest?.slice(0, rest.lastIndexOf('/'))
    const entry = level === undefined ? undefined : byTopicLevel.get(level)
    if (entry === undefined || entry.events === undefined) {
      // Expected under the wildcard plan (parties' traffic); a stray topic otherwise.
      if (plan === 'each') dropped(topic, { reason: 'unknown-topic' })
      return
    }
    const result = classifyInbound({ prefix: options.prefix, deviceId: entry.deviceId, maxPacketSize: options.maxPacketSize }, topic, payload, packet)
    if (!result.ok) return dropped(topic, result)
    try {
      entry.events.message(result.message)
    } catch (error) {
      log.error('message handler failed', { deviceId: entry.deviceId, error })
    }
  }

  const openPool = (k: number): Pool => {
    const { client, connected } = openConnection({
      url: options.url,
      ...(options.username !== undefined && { username: options.username }),
      ...(options.password !== undefined && { password: options.password }),
      tls,
      clientId: `${options.clientIdPrefix}${k}`,
      keepaliveSeconds: options.keepaliveSeconds,
      maxPacketSize: options.maxPacketSize,
      reconnect: { baseMs: TRANSPORT_TIMINGS.reconnectBaseMs, capMs: TRANSPORT_TIMINGS.reconnectCapMs },
      logger: log,
    })
    const pool: Pool = { client, inFlight: new Set(), devices: [], pending: [], flushQueued: false, connected: false, generation: 0 }
    client.on('connect', () => {
      pool.generation++
      pool.connected = true
      connected()
      log.info('connected', { broker: mainOrigin, connection: k, devices: pool.devices.length })
      const wildcard = plan === 'wildcard' ? subscribeAll(client, INBOUND_CHANNELS.map((c) => `${options.prefix}/+/${c}`)) : Promise.resolve()
      wildcard.then(
        () => {
          // Every device of this pool, again on a reconnection (clean start: the broker forgot them).
          pool.pending = [...pool.devices]
          flush(pool)
        },
        (error: Error) => {
          log.error('subscription refused', { error: error.message })
          client.stream.destroy()
        },
      )
    })
    client.on('close', () => {
      if (!pool.connected) return
      pool.connected = false
      pool.generation++
      for (const entry of pool.devices) {
        if (!entry.subscribed) continue
        entry.subscribed = false
        if (!stopping) entry.events?.offline()
      }
    })
    client.on('message', dispatch)
    return pool
  }

  const hub: Hub = {
    prefix: options.prefix,
    mainOrigin,
    byTopicLevel,
    get stopping() {
      return stopping !== undefined
    },
    queueFlush,
  }

  const poolFor = (index: number): Pool => {
    const k = index % size
    return (pools[k] ??= openPool(k))
  }

  return {
    port(deviceId: string): Transport {
      const level = encodeURIComponent(deviceId)
      if (byTopicLevel.has(level)) throw new Error(`mqtt: device ${deviceId} already has a port`)
      const port = new DevicePort(hub, deviceId, level, poolFor(added++))
      byTopicLevel.set(level, port)
      return port
    },

    stop(): Promise<void> {
      stopping ??= (async () => {
        await Promise.all(
          pools.map(async (pool) => {
            if (pool.connected) {
              const started = pool.devices.filter((entry) => entry.events !== undefined)
              await inBatches(started, STATUS_BATCH, (batch) =>
                Promise.all(batch.map((entry) => publishQos1(pool, topicFor(options.prefix, entry.deviceId, STATUS_CHANNEL), 'offline', { retain: true }).catch(() => {}))),
              )
            }
            await new Promise<void>((resolve) => pool.client.end(false, () => resolve()))
          }),
        )
        log.info('stopped', { devices: byTopicLevel.size })
      })()
      return stopping
    },
  }
}
