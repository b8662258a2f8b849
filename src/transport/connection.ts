/**
 * An MQTT connection as the bindings use it: MQTT.js's client and the sends in flight on it, published at QoS 1
 * and settled on PUBACK, or rejected when the connection is closed for good, so that none is left hanging.
 */
import type { MqttClient } from './mqtt-client.ts'

export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export const defaultTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}

export interface Connection {
  readonly client: MqttClient
  /** Rejecters of the sends in flight. */
  readonly inFlight: Set<(error: Error) => void>
}

export function publishQos1(connection: Connection, topic: string, payload: Buffer | string, options: object): Promise<void> {
  const { inFlight } = connection
  return new Promise((resolve, reject) => {
    inFlight.add(reject)
    connection.client.publish(topic, payload, { qos: 1, ...options }, (error) => {
      inFlight.delete(reject)
      if (error) reject(error)
      else resolve()
    })
  })
}

export const closed = () => new Error('mqtt: connection closed')

/** Resolves true when `promise` settles within `ms`, false once `ms` have passed; never rejects. */
export function within(promise: Promise<unknown>, ms: number, timers: Timers): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = timers.setTimeout(() => resolve(false), ms)
    const done = () => {
      timers.clearTimeout(timer)
      resolve(true)
    }
    promise.then(done, done)
  })
}

/** Ends a connection within `timeoutMs`: DISCONNECT when connected (so the broker keeps the will), else at once. */
export async function close(connection: Connection, timeoutMs: number, timers: Timers): Promise<void> {
  const { client } = connection
  if (!client.connected) await new Promise((resolve) => client.end(true, resolve))
  else if (!(await within(new Promise((resolve) => client.end(false, resolve)), timeoutMs, timers))) client.stream.destroy()
  for (const reject of connection.inFlight) reject(closed())
  connection.inFlight.clear()
}
