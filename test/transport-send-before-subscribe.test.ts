/**
 * A message the device sends before its subscriptions are in place (its first session opens as the agent
 * starts) must not reach the broker before them: the party's answer would arrive while the device hears
 * nothing, and the session would stall until it resends. Pins the bug where MQTT.js flushed its offline queue
 * (Package 1) before the `connect` event that subscribes.
 */
import t from 'tap'
import type { Packet } from 'mqtt-packet'
import { createLogger } from '../src/log.ts'
import { createMqttTransport } from '../src/transport/bindings/mqtt.ts'
import type { InboundMessage } from '../src/session/port.ts'
import { topicFor } from '../src/transport/topics.ts'
import { startEmbeddedBroker } from './peers/embedded-broker.ts'
import { connectPeer, disconnect, publish, subscribe } from './peers/mqtt.ts'

const prefix = 'omadm/v1'
const deviceId = 'mac:01-ab-34-ef-69-0c'
const server = 'http://dms.example.com'
const XML = 'application/vnd.syncml.dm+xml'

t.test('a message sent right after start leaves only after the subscription, and its answer is heard', async (t) => {
  const seen: Array<{ clientId: string | undefined; packet: Packet }> = []
  const broker = await startEmbeddedBroker({ onPacket: (clientId, packet) => seen.push({ clientId, packet }) })
  t.teardown(() => broker.close())

  // The party answers the moment the device's message reaches it.
  const party = await connectPeer(broker.url)
  t.teardown(() => disconnect(party))
  party.on('message', () => void publish(party, topicFor(prefix, deviceId, 'dm'), '<SyncML/>', { contentType: XML }))
  await subscribe(party, topicFor(prefix, server, 'dm'))

  const received: InboundMessage[] = []
  let heard: () => void = () => undefined
  const answered = new Promise<void>((resolve) => (heard = resolve))
  const transport = createMqttTransport({
    url: broker.url,
    clientId: `gwmo-${deviceId}`,
    keepaliveSeconds: 30,
    prefix,
    deviceId,
    maxPacketSize: 65536,
    logger: createLogger({ level: 'error', write: () => undefined }),
  })
  await transport.start({
    message: (message) => {
      received.push(message)
      heard()
    },
    online: () => undefined,
    offline: () => undefined,
  })
  t.teardown(() => transport.stop())
  await transport.send({ to: server, payload: Buffer.from('<SyncML/>'), contentType: XML })
  await answered

  const device = seen.filter((s) => s.clientId === `gwmo-${deviceId}`).map((s) => s.packet)
  const subscribeAt = device.findIndex((p) => p.cmd === 'subscribe')
  const sendAt = device.findIndex((p) => p.cmd === 'publish' && p.topic === topicFor(prefix, server, 'dm'))
  t.ok(subscribeAt >= 0 && sendAt > subscribeAt, 'SUBSCRIBE reached the broker before the message to the party')
  t.equal(received[0]?.channel, 'dm', "the party's immediate answer was delivered to the device")
})
