/**
 * One device's port on the shared connections of `shared-mqtt.ts`, and what the two share: the pool a device
 * rides and the hub of the fleet's connections.
 */
import type { MqttClient } from './mqtt-client.ts'
import type { OutboundMessage, Transport, TransportEvents } from '../session/port.ts'
import { publishProperties, routeFor, STATUS_CHANNEL, topicFor } from './topics.ts'

export function publishQos1(client: MqttClient, topic: string, payload: Buffer | string, options: object): Promise<void> {
  return new Promise((resolve, reject) => {
    client.publish(topic, payload, { qos: 1, ...options }, (error) => (error ? reject(error) : resolve()))
  })
}

/** What every device's port needs of the shared connections. */
export interface Hub {
  readonly prefix: string
  readonly mainOrigin: string
  /** By `encodeURIComponent(DevId)`, the form it has in a topic level. */
  readonly byTopicLevel: Map<string, DevicePort>
  readonly stopping: boolean
  /** Subscribes the pool's new devices on the next turn. */
  queueFlush(pool: Pool): void
}

/**
 * One device's transport: a small object with its methods on the prototype (a fleet holds thousands), which
 * is also the pool's record of the device.
 */
export class DevicePort implements Transport {
  events: TransportEvents | undefined
  subscribed = false
  /** Sends waiting for this device's subscriptions (see mqtt.ts: Package 1 must not leave before them). */
  waiting: Array<() => void> | undefined

  constructor(
    private readonly hub: Hub,
    readonly deviceId: string,
    /** `encodeURIComponent(deviceId)`, its key in `byTopicLevel`. */
    readonly level: string,
    readonly pool: Pool,
  ) {}

  async start(events: TransportEvents): Promise<void> {
    if (this.events !== undefined) throw new Error('mqtt: transport already started')
    this.events = events
    this.pool.devices.push(this)
    this.pool.pending.push(this)
    this.hub.queueFlush(this.pool)
  }

  send(message: OutboundMessage): Promise<void> {
    const { hub } = this
    if (hub.stopping || this.events === undefined) return Promise.reject(new Error('mqtt: cannot send, transport is not started'))
    const routed = routeFor({ prefix: hub.prefix, mainOrigin: hub.mainOrigin, to: message.to, ...(message.address !== undefined && { address: message.address }) })
    if (!routed.ok) return Promise.reject(new Error(`mqtt: cannot route to ${message.to}: ${routed.reason}`))
    if (routed.route.origin !== hub.mainOrigin) {
      return Promise.reject(new Error(`mqtt: ${message.to} is on another broker, which a shared connection does not reach`))
    }
    const payload = Buffer.from(message.payload.buffer, message.payload.byteOffset, message.payload.byteLength)
    const properties = publishProperties(message)
    const { topic } = routed.route
    const send = () => publishQos1(this.pool.client, topic, payload, { properties })
    if (this.subscribed) return send()
    return new Promise<void>((resolve) => (this.waiting ??= []).push(resolve)).then(send)
  }

  // One device leaving the fleet: its status goes `offline`; the shared connection stays.
  async stop(): Promise<void> {
    if (this.events === undefined) return
    this.events = undefined
    this.hub.byTopicLevel.delete(this.level)
    if (this.pool.connected && !this.hub.stopping) {
      await publishQos1(this.pool.client, topicFor(this.hub.prefix, this.deviceId, STATUS_CHANNEL), 'offline', { retain: true }).catch(() => {})
    }
  }
}

export interface Pool {
  readonly client: MqttClient
  readonly devices: DevicePort[]
  /** Devices added since the last subscription round; subscribed together on the next turn. */
  pending: DevicePort[]
  flushQueued: boolean
  connected: boolean
  generation: number
}

