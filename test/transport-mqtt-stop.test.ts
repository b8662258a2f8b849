/**
 * Regression: a transport stopped while a connection attempt was under way reconnected afterwards (MQTT.js's
 * `manualConnect` makes `end()` forget it is shutting down), leaving a socket that kept the process alive.
 */
import t from 'tap'
import { createLogger } from '../src/log.ts'
import { createMqttTransport } from '../src/transport/mqtt.ts'
import { startMosquitto } from './helpers/mosquitto.ts'

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
