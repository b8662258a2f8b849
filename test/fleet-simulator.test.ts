// The fleet simulator end to end: a few hundred virtual End Devices in one process, sharing one MQTT connection
// to a real mosquitto, each completing the GwMO detection flow (binding.md §4.1–4.3) with a gateway and a DM
// Server that hold one peer instance per device. Every device must be heard on its own topics only, authenticate
// with its own nonces, and be told apart by the parties; and `gwmo-agent simulate` runs the same from the bundle.
import t from 'tap'
import { spawn } from 'node:child_process'
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { parseConfig, type AgentConfig } from '../src/config.ts'
import { createLogger } from '../src/log.ts'
import { startFleet, fleetDeviceIds } from '../src/runtime/simulate.ts'
import { detectionFlow, startFleetPeers, withLimit } from '../bench/fleet/peers.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { AGENT_BUNDLE } from './helpers/agent-process.ts'
import { GATEWAY, SERVER_A, factoryBootstrapXml } from './fixtures/gwmo/parties.ts'
import { readAccounts } from '../src/tree/accounts.ts'

const DEVICES = 300
const GW_ADDRESS = '2002:0:0:0:0:0:9da6:e219'

// Open: one shared connection carries hundreds of devices' topics, which a per-device ACL does not describe.
const broker = await startMosquitto({ open: true })
t.teardown(() => broker.stop())

const dir = mkdtempSync(join(tmpdir(), 'gwmo-fleet-'))
const factory = join(dir, 'factory.xml')
// The factory document names one device; every virtual device applies it under its own DevId.
writeFileSync(factory, factoryBootstrapXml('mac:02-00-00-00-00-00', [SERVER_A, GATEWAY]))
const rawConfig = {
  deviceId: 'mac:02-00-00-00-00-00',
  broker: { url: broker.url },
  stateDir: join(dir, 'state'),
  factoryBootstrap: factory,
  logLevel: 'warn',
  session: { timeoutSeconds: 20, retries: 3, retryBackoffSeconds: 1, maxBackoffSeconds: 4 },
}
writeFileSync(join(dir, 'config.json'), JSON.stringify(rawConfig))
const parsed = parseConfig(rawConfig, {})
if (!parsed.ok) throw new Error(parsed.error)
const config: AgentConfig = parsed.config

/** Retained status of every device, as a late subscriber sees it. */
async function statuses(expected: number, wanted: 'online' | 'offline', timeoutMs = 60_000): Promise<Map<string, string>> {
  const seen = new Map<string, string>()
  const client = mqtt.connect(broker.url, { protocolVersion: 5 })
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`saw ${[...seen.values()].filter((s) => s === wanted).length} of ${expected} ${wanted}`)), timeoutMs)
      const check = () => {
        if ([...seen.values()].filter((s) => s === wanted).length >= expected) {
          clearTimeout(timer)
          resolve()
        }
      }
      client.on('message', (topic, payload) => {
        seen.set(decodeURIComponent(topic.split('/')[2]!), payload.toString())
        check()
      })
      client.on('connect', () => client.subscribe('omadm/v1/+/status', { qos: 1 }))
    })
  } finally {
    client.end(true)
  }
  return seen
}

t.test('device ids: a MAC prefix is completed to six octets, numbered in order', async (t) => {
  const ids = fleetDeviceIds('mac:02-00', 258)
  t.ok(ids.ok)
  if (!ids.ok) return
  t.equal(ids.ids[0], 'mac:02-00-00-00-00-00')
  t.equal(ids.ids[257], 'mac:02-00-00-00-01-01')
  t.equal(new Set(ids.ids).size, 258, 'all distinct')
  t.same(fleetDeviceIds('mac:02-00-00-00-00', 256).ok, true, 'one free octet holds 256 devices')
  t.same(fleetDeviceIds('mac:02-00-00-00-00', 257).ok, false, 'but not 257')
  t.same(fleetDeviceIds('mac:zz', 1).ok, false, 'a prefix that is no MAC is refused')
  const imei = fleetDeviceIds('IMEI:4930051005', 12)
  t.same(imei.ok && [imei.ids[0], imei.ids[11]], ['IMEI:493005100500', 'IMEI:493005100511'])
})

t.test(`${DEVICES} devices on one connection each complete the detection flow`, async (t) => {
  const peers = await startFleetPeers(broker.url, SERVER_A, GATEWAY)
  t.teardown(() => peers.stop())
  const logLines: string[] = []
  const logger = createLogger({ level: 'warn', write: (line) => logLines.push(line) })
  const started = await startFleet({ config, devices: DEVICES, logger })
  if (!started.ok) throw new Error(started.error)
  const { fleet } = started
  t.teardown(() => fleet.stop())
  const ids = fleet.devices.map((d) => d.deviceId)
  t.equal(new Set(ids).size, DEVICES, 'every device has its own DevId')

  // The factory bootstrap makes each device open a session with every account it configured.
  await withLimit(ids, 50, async (id) => {
    for (const party of [peers.server.member(id), peers.gateway.member(id)]) {
      await party.waitForSession((s) => s.origin === 'device' && s.closed && s.deviceAuthenticated, 60_000)
    }
  })
  const online = await statuses(DEVICES, 'online')
  t.equal(ids.filter((id) => online.get(id) === 'online').length, DEVICES, 'every device announced itself online')

  const outcomes = await withLimit(ids, 100, (id) => detectionFlow(peers, id, GW_ADDRESS, 60_000))
  t.equal(outcomes.filter((o) => o.dmsList.length === 1 && o.dmsList[0] === SERVER_A.serverId).length, DEVICES,
    'the gateway received a Bootstrapped DMS List naming the DM Server (and not itself) from every device')
  t.equal(outcomes.filter((o) => o.associated).length, DEVICES, 'the server received an Associated Gateway alert from every device')
  for (const id of ids.slice(0, 5)) {
    const sessions = peers.server.member(id).sessions
    t.ok(sessions.every((s) => s.received.every((r) => r.message.hdr.source === id)), `${id}: the server's sessions for it hold its messages only`)
  }
  t.equal(peers.server.size, DEVICES, 'the server heard from exactly the fleet')
  t.equal(peers.gateway.size, DEVICES, 'the gateway heard from exactly the fleet')
  t.equal(peers.server.unknown + peers.gateway.unknown, 0, 'no message the parties could not place')
  t.same(logLines.filter((l) => /"level":"error"/.test(l)), [], 'no device logged an error')

  await fleet.stop()
  const after = await statuses(DEVICES, 'offline')
  t.equal(ids.filter((id) => after.get(id) === 'offline').length, DEVICES, 'a clean stop leaves every device offline')
})

t.test('a device its DM Server cannot authenticate fails alone: the rest of the fleet completes, each with a tree of its own', async (t) => {
  const failing = 'mac:02-02-00-00-00-03'
  // That device's server expects other client credentials than the factory account holds: every Package 1 of
  // the device is refused (401), its sessions fail and are retried, while the others go on.
  const peers = await startFleetPeers(broker.url, SERVER_A, GATEWAY, {
    serverFor: (deviceId) => (deviceId === failing ? { ...SERVER_A, clientPassword: 'not-what-the-device-holds' } : SERVER_A),
  })
  t.teardown(() => peers.stop())
  const logger = createLogger({ level: 'silent' })
  const fleetConfig = { ...config, broker: { ...config.broker, clientId: 'gwmo-fleet-failing-device' } }
  const started = await startFleet({ config: fleetConfig, devices: 8, idPrefix: 'mac:02-02', logger })
  if (!started.ok) throw new Error(started.error)
  const { fleet } = started
  t.teardown(() => fleet.stop())
  const ids = fleet.devices.map((d) => d.deviceId)
  const others = ids.filter((id) => id !== failing)
  t.equal(others.length, 7)

  await withLimit(others, 8, async (id) => {
    for (const party of [peers.server.member(id), peers.gateway.member(id)]) {
      await party.waitForSession((s) => s.origin === 'device' && s.closed && s.deviceAuthenticated, 60_000)
    }
  })
  const outcomes = await withLimit(others, 8, (id) => detectionFlow(peers, id, GW_ADDRESS, 60_000))
  t.equal(outcomes.filter((o) => o.associated && o.dmsList[0] === SERVER_A.serverId).length, 7, 'every other device completed the detection flow')
  const refused = peers.server.member(failing).sessions
  t.ok(refused.length > 0 && refused.every((s) => !s.deviceAuthenticated), 'the failing device was heard, and refused every time')

  for (const device of fleet.devices) {
    t.equal(device.agent.tree.get('./DevInfo/DevId', 'device').value?.data, device.deviceId, `${device.deviceId}: its own DevId`)
  }
  const roles = (id: string) => readAccounts(fleet.devices.find((d) => d.deviceId === id)!.agent.tree).map((a) => `${a.serverId}:${a.role}`)
  t.same(roles(others[0]!), roles(others[1]!), 'devices built from one factory bootstrap hold the same accounts')
  t.ok(roles(others[0]!).includes(`${GATEWAY.serverId}:gateway`))
  t.equal(fleet.devices[0]!.agent.tree.replace('./DevDetail/URI/MaxDepth', { format: 'chr', data: '9' }, 'device'), 200)
  t.same(fleet.devices[1]!.agent.tree.get('./DevDetail/URI/MaxDepth', 'device').value?.data, '16', 'a change to one device\'s tree is its own')
})

t.test('gwmo-agent simulate: a factory bootstrap that does not decode stops it before any connection, exit 1', async (t) => {
  const badDir = mkdtempSync(join(tmpdir(), 'gwmo-fleet-bad-'))
  writeFileSync(join(badDir, 'factory.xml'), '<SyncML><SyncHdr>')
  writeFileSync(join(badDir, 'config.json'), JSON.stringify({ ...rawConfig, broker: { url: broker.url, clientId: 'gwmo-bad-factory' }, factoryBootstrap: join(badDir, 'factory.xml') }))
  const child = spawn(process.execPath, [AGENT_BUNDLE, 'simulate', '--devices', '3', '--broker', broker.url, '--config', join(badDir, 'config.json')], { stdio: 'pipe' })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  t.equal(await new Promise((resolve) => child.on('exit', resolve)), 1, 'the process ends by itself, failed')
  t.match(stderr, /factoryBootstrap/, 'naming the factory bootstrap')
  t.notMatch(broker.log(), /gwmo-bad-factory/, 'and it never connected')
})

t.test('gwmo-agent simulate runs a fleet from the bundle until SIGINT', async (t) => {
  const usage = spawn(process.execPath, [AGENT_BUNDLE, 'simulate', '--broker', broker.url, '--config', join(dir, 'config.json')], { stdio: 'pipe' })
  let usageErr = ''
  usage.stderr.on('data', (chunk: Buffer) => (usageErr += chunk.toString()))
  t.equal(await new Promise((resolve) => usage.on('exit', resolve)), 2, 'without --devices: usage error')
  t.match(usageErr, /--devices/)

  const child = spawn(process.execPath, [AGENT_BUNDLE, 'simulate', '--devices', '7', '--id-prefix', 'mac:02-01',
    '--broker', broker.url, '--config', join(dir, 'config.json'), '--connections', '2'], { stdio: 'pipe' })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const online = await statuses(7, 'online')
  const ours = [...online.keys()].filter((id) => id.startsWith('mac:02-01-'))
  t.equal(ours.length, 7, 'seven devices came online')
  t.ok(ours.includes('mac:02-01-00-00-00-06'), 'numbered from the prefix')
  child.kill('SIGINT')
  t.equal(await exited, 0, `clean exit on SIGINT ${stderr}`)
  const after = await statuses(DEVICES + 7, 'offline')
  t.equal(ours.filter((id) => after.get(id) === 'offline').length, 7, 'and each left its offline status')
})

t.test('gwmo-agent simulate without the simulator file beside the bundle (a device install): one line, exit 2', async (t) => {
  const deviceDir = mkdtempSync(join(tmpdir(), 'gwmo-device-install-'))
  copyFileSync(AGENT_BUNDLE, join(deviceDir, 'gwmo-agent.js'))
  const child = spawn(process.execPath, [join(deviceDir, 'gwmo-agent.js'), 'simulate', '--devices', '3', '--broker', broker.url, '--config', join(dir, 'config.json')], { stdio: 'pipe' })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  t.equal(await new Promise((resolve) => child.on('exit', resolve)), 2, 'a usage error')
  t.equal(stderr.trim().split('\n').length, 1, 'one line')
  t.match(stderr, /fleet simulator is not installed beside this agent \(gwmo-agent-simulate\.js/, 'naming the missing file')
})
