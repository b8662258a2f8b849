/**
 * The port's `send` over MQTT, written once for the agent's own binding and a fleet's device ports: the route of
 * binding.md §2 (a topic, and the broker of an `mqtt://` AppAddr), the connection the binding picks for that
 * broker, the wait for the device's subscriptions there, and a QoS 1 publish with the message's MQTT 5
 * properties (its content type, and the binding's headers such as `x-syncml-hmac` as user properties).
 */
import type { OutboundMessage } from '../session/port.ts'
import { publishQos1, type Connection } from './connection.ts'
import type { SendGate } from './send-gate.ts'
import { routeFor, type Route } from './topics.ts'

export interface Outlet {
  connection: Connection
  /** Present on the connection the device's own topics are subscribed on. */
  gate?: SendGate
}

/** Picks the connection for a route; a string says why there is none. */
export type OutletFor = (route: Route, address: string | undefined, message: OutboundMessage) => Outlet | string

const MQTT_URL = /^mqtts?:\/\//i

export function publishProperties(message: { contentType: string; properties?: Record<string, string> }): object {
  return {
    contentType: message.contentType,
    ...(message.properties && Object.keys(message.properties).length > 0 && { userProperties: message.properties }),
  }
}

export function sendOverMqtt(message: OutboundMessage, where: { prefix: string; mainOrigin: string }, outletFor: OutletFor): Promise<void> {
  const address = message.address !== undefined && MQTT_URL.test(message.address) ? message.address : undefined
  const routed = routeFor({ ...where, to: message.to, ...(address !== undefined && { address }) })
  const outlet = routed.ok ? outletFor(routed.route, address, message) : routed.reason
  if (typeof outlet === 'string' || !routed.ok) return Promise.reject(new Error(`mqtt: cannot route to ${message.to}: ${outlet}`))
  const { payload } = message
  const bytes = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
  const out = () => publishQos1(outlet.connection, routed.route.topic, bytes, { properties: publishProperties(message) })
  return outlet.gate ? outlet.gate.whenSubscribed(out) : out()
}
