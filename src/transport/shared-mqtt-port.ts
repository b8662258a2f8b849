/**
 * One device's port on the shared connections of `shared-mqtt.ts`, and what the two share: the pool a device
 * rides and the hub of the fleet's connections.
 */
import type { OutboundMessage, Transport, TransportEvents } from '../session/port.ts'
import { publishQos1, type Connection } from './connection.ts'
import { SendGate } from './send-gate.ts'
import { sendOverMqtt } from './send.ts'
import { STATUS_CHANNEL, topicFor } from './topics.ts'

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
 * is also the pool's record of the device and the gate of its sends.
 */
export class DevicePort extends SendGate implements Transport {
  events: TransportEvents | undefined

  constructor(
    private readonly hub: Hub,
    readonly deviceId: string,
    /** `encodeURIComponent(deviceId)`, its key in `byTopicLevel`. */
    readonly level: string,
    readonly pool: Pool,
  ) {
    super()
  }

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
    const own = { prefix: hub.prefix, mainOrigin: hub.mainOrigin, connection: this.pool, gate: this }
    return sendOverMqtt(message, own, (route) => (route.origin === hub.mainOrigin ? undefined : 'it is on another broker, which a shared connection does not reach'))
  }

  // One device leaving the fleet: its status goes `offline`; the shared connection stays.
  async stop(): Promise<void> {
    if (this.events === undefined) return
    this.events = undefined
    this.hub.byTopicLevel.delete(this.level)
    if (this.pool.connected && !this.hub.stopping) {
      await publishQos1(this.pool, topicFor(this.hub.prefix, this.deviceId, STATUS_CHANNEL), 'offline', { retain: true }).catch(() => {})
    }
  }
}

export interface Pool extends Connection {
  readonly devices: DevicePort[]
  /** Devices added since the last subscription round; subscribed together on the next turn. */
  pending: DevicePort[]
  flushQueued: boolean
  connected: boolean
  generation: number
}
