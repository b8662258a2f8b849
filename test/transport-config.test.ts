import t from 'tap'
import { parseConfig } from '../src/config.ts'
import { silentLogger } from '../src/log.ts'
import { mqttOptionsFromConfig } from '../src/runtime/transport-options.ts'

t.test('the transport takes its broker, identity and limits from the configuration', async (t) => {
  const parsed = parseConfig({
    deviceId: 'IMEI:493005100592800',
    broker: { url: 'mqtts://broker.example', username: 'dev', ca: '/ca.pem', keepaliveSeconds: 45 },
    stateDir: '/s',
    factoryBootstrap: '/f',
    topicPrefix: 'site/omadm',
    maxPacketSize: 4096,
  }, { GWMO_BROKER_PASSWORD: 'from-env' })
  if (!parsed.ok) throw new Error(parsed.error)
  const ca = Buffer.from('CA PEM')
  t.same(mqttOptionsFromConfig(parsed.config, { ca }, silentLogger), {
    url: 'mqtts://broker.example',
    username: 'dev',
    password: 'from-env',
    ca,
    clientId: 'gwmo-IMEI:493005100592800',
    keepaliveSeconds: 45,
    prefix: 'site/omadm',
    deviceId: 'IMEI:493005100592800',
    maxPacketSize: 4096,
    logger: silentLogger,
  })
})
