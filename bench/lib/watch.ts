/** A bench-side MQTT client: waits for one message on a topic, with TCP_NODELAY like every side of the bench. */
import type { MqttClient } from 'mqtt'
import { connectPeer, publish, subscribe } from '../../test/peers/mqtt.ts'

export class Watcher {
  private readonly waiting = new Map<string, Array<{ accept: (payload: Buffer) => boolean; take: (payload: Buffer, arrivedAt: number) => void }>>()

  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload) => {
      const arrivedAt = performance.now()
      const list = this.waiting.get(topic)
      const index = list?.findIndex((w) => w.accept(payload)) ?? -1
      if (list === undefined || index < 0) return
      const [waiter] = list.splice(index, 1)
      if (list.length === 0) this.waiting.delete(topic)
      waiter!.take(payload, arrivedAt)
    })
  }

  static async start(brokerUrl: string): Promise<Watcher> {
    return new Watcher(await connectPeer(brokerUrl, { clientId: `bench-${process.pid}-${Math.random().toString(16).slice(2, 8)}` }))
  }

  subscribe(topic: string): Promise<void> {
    return subscribe(this.client, topic)
  }

  /** The next message on `topic` (registered before anything is sent, so it cannot be missed). */
  next(topic: string, accept: (payload: Buffer) => boolean = () => true, timeoutMs = 30_000): Promise<Buffer> {
    return this.#wait(topic, accept, timeoutMs, (payload) => payload)
  }

  /** Like `next`, resolving with when (`performance.now()`) the message arrived, before anything read it. */
  nextArrival(topic: string, accept: (payload: Buffer) => boolean = () => true, timeoutMs = 30_000): Promise<number> {
    return this.#wait(topic, accept, timeoutMs, (_payload, arrivedAt) => arrivedAt)
  }

  #wait<T>(topic: string, accept: (payload: Buffer) => boolean, timeoutMs: number, pick: (payload: Buffer, arrivedAt: number) => T): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no message on ${topic} within ${timeoutMs} ms`)), timeoutMs)
      const list = this.waiting.get(topic) ?? []
      list.push({
        accept,
        take: (payload, arrivedAt) => {
          clearTimeout(timer)
          resolve(pick(payload, arrivedAt))
        },
      })
      this.waiting.set(topic, list)
    })
  }

  /** Removes a retained message (an empty retained publish). */
  clearRetained(topic: string): Promise<void> {
    return publish(this.client, topic, new Uint8Array(0), { retain: true })
  }

  publish(topic: string, payload: Uint8Array | string): Promise<void> {
    return publish(this.client, topic, payload)
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.client.end(false, {}, () => resolve()))
  }
}
