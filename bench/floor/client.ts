/**
 * The floor of the size, start, memory and round-trip figures: the least an MQTT 5 end device on MQTT.js can
 * be. It connects (on `mqtt/lib/client` and `node:net`, the same way the agent does), subscribes to its input
 * topic, publishes a retained `online` on its status topic, and answers every message on its input with the
 * same bytes on its output topic. No configuration, no state, no SyncML.
 *
 * `node floor.js mqtt://host:port <id>`: topics `floor/<id>/in`, `floor/<id>/out`, `floor/<id>/status`.
 */
import { connect } from 'node:net'
import * as clientModule from 'mqtt/lib/client'

type MqttClientClass = typeof clientModule.default
const loaded = clientModule.default as MqttClientClass | { default: MqttClientClass }
const MqttClient: MqttClientClass = typeof loaded === 'function' ? loaded : loaded.default

const [url = 'mqtt://127.0.0.1:1883', id = 'floor'] = process.argv.slice(2)
const { hostname, port } = new URL(url)
const topic = (leaf: string) => `floor/${id}/${leaf}`

// TCP_NODELAY, as the agent sets it: MQTT.js's default stream builder does not.
const client = new MqttClient(() => connect({ host: hostname, port: Number(port || 1883) }).setNoDelay(true), {
  protocolVersion: 5,
  clientId: `floor-${id}`,
  clean: true,
  reconnectPeriod: 1000,
  log: () => {},
})
client.on('connect', () => {
  client.subscribe(topic('in'), { qos: 1 }, () => {
    client.publish(topic('status'), 'online', { qos: 1, retain: true })
  })
})
// A refused reconnection is an `error` event: without a listener it would end the process at a broker restart.
client.on('error', () => {})
client.on('message', (_topic, payload) => {
  client.publish(topic('out'), payload, { qos: 1 })
})
const stop = () => client.end(false, () => process.exit(0))
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
