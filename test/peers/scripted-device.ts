/**
 * A tiny scripted End Device, raw MQTT.js: for testing the peers themselves while no agent is involved. It
 * publishes what a test gives it and hands over, in order, what arrives on its own topics.
 */
import type { MqttClient } from 'mqtt'
import { connectPeer, CONTENT_TYPE, disconnect, publish, subscribe, topicFor, userProperties, type PeerChannel } from './mqtt.ts'
import { parseMessage, type ParsedMessage } from './syncml.ts'
import { looksLikeWbxml, parseWbxmlMessage } from './wbxml.ts'

export interface Delivery {
  topic: string
  channel: PeerChannel
  payload: Buffer
  contentType?: string
  userProperties: Record<string, string>
}

export class ScriptedDevice {
  private readonly inbox: Delivery[] = []
  private waiting: ((d: Delivery) => void) | undefined

  private constructor(
    readonly deviceId: string,
    private readonly client: MqttClient,
  ) {
    client.on('message', (topic, payload, packet) => {
      const delivery: Delivery = {
        topic,
        channel: topic.slice(topic.lastIndexOf('/') + 1) as PeerChannel,
        payload,
        contentType: packet.properties?.contentType,
        userProperties: userProperties(packet.properties?.userProperties),
      }
      const waiter = this.waiting
      this.waiting = undefined
      if (waiter) waiter(delivery)
      else this.inbox.push(delivery)
    })
  }

  static async start(brokerUrl: string, deviceId: string): Promise<ScriptedDevice> {
    const client = await connectPeer(brokerUrl, { as: deviceId })
    const device = new ScriptedDevice(deviceId, client)
    for (const channel of ['dm', 'notification', 'bootstrap'] as const) await subscribe(client, topicFor(deviceId, channel))
    return device
  }

  /** The next delivery to any of the device's topics. */
  next(timeoutMs = 5000): Promise<Delivery> {
    const queued = this.inbox.shift()
    if (queued) return Promise.resolve(queued)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined
        reject(new Error(`${this.deviceId}: nothing received within ${timeoutMs} ms`))
      }, timeoutMs)
      this.waiting = (d) => {
        clearTimeout(timer)
        resolve(d)
      }
    })
  }

  /** The next delivery, read as a SyncML message (XML or WBXML). */
  async nextMessage(timeoutMs = 5000): Promise<{ message: ParsedMessage; delivery: Delivery }> {
    const delivery = await this.next(timeoutMs)
    const outcome = looksLikeWbxml(delivery.payload, delivery.contentType)
      ? parseWbxmlMessage(delivery.payload)
      : parseMessage(delivery.payload.toString('utf8'))
    if (!outcome.ok) throw new Error(`not a SyncML message on ${delivery.topic}: ${outcome.error}`)
    return { message: outcome.message, delivery }
  }

  /** True when nothing arrives within `ms` (for refusals: a message that must not come). */
  async quietFor(ms: number): Promise<boolean> {
    try {
      await this.next(ms)
      return false
    } catch {
      return true
    }
  }

  /** Publishes a message to a party's `dm` topic. */
  send(to: string, payload: string | Uint8Array, props: Record<string, string> = {}): Promise<void> {
    const contentType = typeof payload === 'string' ? CONTENT_TYPE.xml : CONTENT_TYPE.wbxml
    return publish(this.client, topicFor(to, 'dm'), payload, { contentType, userProperties: props })
  }

  stop(): Promise<void> {
    return disconnect(this.client)
  }
}
