/**
 * The demo's view of the whole broker: one MQTT 5 client subscribed to every topic under the prefix, keeping
 * each message in arrival order, so that a step can show what did (and did not) leave the device.
 */
import type { MqttClient } from 'mqtt'
import { connectPeer, disconnect, subscribe, topicFor, type PeerChannel } from './mqtt.ts'
import { Waiters } from './waiters.ts'

export interface WireMessage {
  topic: string
  payload: Buffer
}

/** The channels other parties publish to the device on; everything else under the prefix comes from the device. */
const TO_DEVICE: readonly PeerChannel[] = ['dm', 'notification', 'bootstrap']

export class WireWatch {
  readonly messages: WireMessage[] = []
  readonly #waiters = new Waiters()

  private constructor(
    private readonly client: MqttClient,
    private readonly deviceId: string,
    private readonly prefix: string,
  ) {
    client.on('message', (topic, payload) => {
      this.messages.push({ topic, payload })
      this.#waiters.notify()
    })
  }

  static async start(brokerUrl: string, deviceId: string, prefix: string): Promise<WireWatch> {
    const client = await connectPeer(brokerUrl, { clientId: `demo-wire-${process.pid}` })
    const watch = new WireWatch(client, deviceId, prefix)
    await subscribe(client, `${prefix}/#`)
    return watch
  }

  /** A position in the record, to look at what came after it. */
  mark(): number {
    return this.messages.length
  }

  /** The messages the device published after `mark`: on any topic but its own inbound ones. */
  fromDevice(mark: number): WireMessage[] {
    const inbound = new Set(TO_DEVICE.map((channel) => topicFor(this.deviceId, channel, this.prefix)))
    return this.messages.slice(mark).filter((m) => !inbound.has(m.topic))
  }

  /** The first message on `topic` after `mark`. */
  next(topic: string, mark: number, timeoutMs: number): Promise<WireMessage> {
    return this.#waiters.waitFor(() => this.messages.slice(mark).find((m) => m.topic === topic), timeoutMs, `message on ${topic}`)
  }

  /** Resolves once `condition` holds, re-checked on every message. */
  async until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    await this.#waiters.waitFor(() => (condition() ? true : undefined), timeoutMs, what)
  }

  stop(): Promise<void> {
    return disconnect(this.client)
  }
}

/** Whether any of the messages holds `text` (as UTF-8 bytes: in XML text and in WBXML inline strings alike). */
export function anyHolds(messages: WireMessage[], text: string): boolean {
  const needle = Buffer.from(text, 'utf8')
  return messages.some((m) => m.payload.includes(needle))
}
