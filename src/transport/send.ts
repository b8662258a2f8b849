/**
 * The port's `send` over MQTT, written once for the agent's own binding and a fleet's device ports: the route of
 * binding.md §2 (a topic, and the broker of an `mqtt://` AppAddr), the connection the binding picks for that
 * broker, the wait for the device's subscriptions on its own connection, and a QoS 1 publish with the message's
 * MQTT 5 properties (its content type, and the binding's headers such as `x-syncml-hmac` as user properties).
 */
import type { OutboundMessage } from '../session/port.ts'
import { publishQos1, type Connection } from './connection.ts'
import type { SendGate } from './send-gate.ts'
import { routeFor, type Route } from './topics.ts'

/** Where the device's own topics are subscribed, and the gate of the sends that go there. */
export interface OwnConnection {
  readonly prefix: string
  readonly mainOrigin: string
  readonly connection: Connection
  readonly gate: SendGate
}

/** Picks the connection for a route: the device's own (undefined) or another; a string says why there is none. */
export type ConnectionFor = (route: Route, message: OutboundMessage) => Connection | string | undefined

export function publishProperties(message: { contentType: string; properties?: Record<string, string> }): object {
  return {
    contentType: message.contentType,
    ...(message.properties && Object.keys(message.properties).length > 0 && { userProperties: message.properties }),
  }
}

export function sendOverMqtt(message: OutboundMessage, own: OwnConnection, connectionFor: ConnectionFor): Promise<void> {
  const routed = routeFor({ prefix: own.prefix, mainOrigin: own.mainOrigin, to: message.to, address: message.address })
  const other = routed.ok ? connectionFor(routed.route, message) : routed.reason
  if (typeof other === 'string' || !routed.ok) return Promise.reject(new Error(`mqtt: cannot route to ${message.to}: ${other}`))
  const { payload } = message
  // MQTT.js takes a Buffer or a string: a view of the same bytes, no copy.
  const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
  const out = () => publishQos1(other ?? own.connection, routed.route.topic, bytes, { properties: publishProperties(message) })
  return other === undefined ? own.gate.whenSubscribed(out) : out()
}
