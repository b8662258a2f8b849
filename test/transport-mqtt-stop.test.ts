/**
 * Regression: a transport stopped while a connection attempt was under way reconnected afterwards (MQTT.js's
 * `manualConnect` makes `end()` forget it is shutting down), leaving a socket that kept the process alive.
 */
import t from 'tap'
import { createLogger } from '../src/log.ts'
import { createMqttTransport } from '../src/transport/bindings/mqtt.ts'
import { topicFor } from '../src/transport/topics.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startEmbeddedBroker } from './peers/embedded-broker.ts'
import { connectPeer, disconnect, subscribe } from './peers/mqtt.ts'

const sockets = () => process.getActiveResourcesInfo().filter((name) => /Socket|TLS|Connect|GetAddrInfo/.test(name))

t.test('a transport stopped in the middle of connecting leaves no socket behind', async (t) => {
  const mosquitto = await startMosquitto({ tls: {} })
  t.teardown(() => mosquitto.stop())
  const url = mosquitto.tls?.url ?? ''
  for (let round = 0; round < 24; round++) {
    let failures = 0
    // No CA given: every TLS attempt fails and is retried after a few milliseconds.
    const transport = createMqttTransport({
      url, clientId: `stop-${round}`, keepaliveSeconds: 30, prefix: 'omadm/v1', deviceId: `mac:${round}`, maxPacketSize: 65536,
      logger: createLogger({ level: 'warn', write: () => failures++ }),
      reconnect: { baseMs: 4, capMs: 8 },
    })
    await transport.start({ message() {}, online() {}, offline() {} })
    // Stop at different points of the retry cycle: before the first failure, after one, after two.
    while (failures < round % 3) await new Promise((resolve) => setImmediate(resolve))
    await transport.stop()
  }
  // Let sockets that are closing finish closing; a reconnection armed by mistake fires within this time.
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.same(sockets(), [], 'nothing left connecting or connected')
})

t.test('a stop while the SUBACK is still on its way leaves the retained status offline, never online', async (t) => {
  const deviceId = 'mac:02-00-00-00-00-51'
  const statusTopic = topicFor('omadm/v1', deviceId, 'status')
  let releaseSuback: () => void = () => undefined
  let subscribing: () => void = () => undefined
  const subscribeSeen = new Promise<void>((resolve) => (subscribing = resolve))
  const broker = await startEmbeddedBroker({
    beforeSuback: (clientId) => {
      if (clientId !== `gwmo-${deviceId}`) return Promise.resolve()
      subscribing()
      return new Promise((resolve) => (releaseSuback = resolve))
    },
  })
  t.teardown(() => broker.close())
  let onlineEvents = 0
  const transport = createMqttTransport({
    url: broker.url, clientId: `gwmo-${deviceId}`, keepaliveSeconds: 30, prefix: 'omadm/v1', deviceId, maxPacketSize: 65536,
    logger: createLogger({ level: 'error', write: () => undefined }),
  })
  await transport.start({ message() {}, online: () => onlineEvents++, offline() {} })
  await subscribeSeen
  // The SUBACK arrives while the stop's `offline` is in flight: `online` must not be published after it.
  const stopped = transport.stop()
  releaseSuback()
  await stopped

  const observer = await connectPeer(broker.url)
  t.teardown(() => disconnect(observer))
  const retained = new Promise<string>((resolve) => observer.on('message', (_topic, payload) => resolve(payload.toString())))
  await subscribe(observer, statusTopic)
  t.equal(await retained, 'offline')
  t.equal(onlineEvents, 0, 'the agent was never told it is online')
})
