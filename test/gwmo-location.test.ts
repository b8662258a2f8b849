import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { LocationUpdate } from '../src/codec/gwmo.ts'
import {
  defaultGatewayIpv4,
  defaultGatewayIpv6,
  fileLocationSource,
  osLocationSource,
  type LocationSource,
  type NetworkLocation,
} from '../src/gwmo/location-source.ts'
import { installGwmo } from '../src/gwmo/index.ts'
import { LOCATION_SLOT, LocationMonitor } from '../src/gwmo/location.ts'
import { captureLog, DEVICE, fakeClock, genericAlerts, gwmoWorld, memoryState, settle, type PartySpec, type World } from './helpers/gwmo-harness.ts'

const ROUTE = [
  'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
  'eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0',
  'wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0',
  'eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
].join('\n')

const IPV6_ROUTE = [
  'fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0',
  '00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0',
  '00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo',
].join('\n')

const IF_INET6 = [
  'fd000000000000000000000000000002 04 40 00 80     eth0',
  'fd0000000000000012345678abcdef01 04 40 00 01     eth0',
  'fe8000000000000000fc00fffe000001 04 40 20 80     eth0',
].join('\n')

const INTERFACES = {
  lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
  eth0: [
    { address: '192.0.2.2', netmask: '255.255.255.0', family: 'IPv4', mac: '02:fc:00:00:00:01', internal: false, cidr: '192.0.2.2/24' },
    { address: 'fd00::2', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:fc:00:00:00:01', internal: false, cidr: 'fd00::2/64', scopeid: 0 },
    { address: 'fd00::1234:5678:abcd:ef01', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:fc:00:00:00:01', internal: false, cidr: null, scopeid: 0 },
    { address: 'fe80::fc:ff:fe00:1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:fc:00:00:00:01', internal: false, cidr: null, scopeid: 4 },
  ],
} as unknown as ReturnType<typeof import('node:os').networkInterfaces>

t.test('OS source: non-internal addresses, without link-local or temporary IPv6, and the default route', async (t) => {
  const files: Record<string, string> = { '/proc/net/route': ROUTE, '/proc/net/ipv6_route': IPV6_ROUTE, '/proc/net/if_inet6': IF_INET6 }
  const source = osLocationSource({
    interfaces: () => INTERFACES,
    readText: async (path) => {
      const text = files[path]
      if (text === undefined) throw new Error('ENOENT')
      return text
    },
  })
  t.same(await source.read(), { addresses: ['192.0.2.2', 'fd00::2'], defaultGateway: '192.0.2.1' })
})

t.test('OS source: without /proc it still reports the addresses', async (t) => {
  const source = osLocationSource({ interfaces: () => INTERFACES, readText: () => Promise.reject(new Error('ENOENT')) })
  const read = await source.read()
  t.same(read.addresses, ['192.0.2.2', 'fd00::2', 'fd00::1234:5678:abcd:ef01'], 'temporary flags unknown: address kept')
  t.equal(read.defaultGateway, undefined)
})

t.test('OS source on this machine answers without throwing', async (t) => {
  const read = await osLocationSource().read()
  t.ok(Array.isArray(read.addresses))
  t.notOk(read.addresses.includes('127.0.0.1'), 'loopback is internal')
})

t.test('default routes: lowest metric IPv4, IPv6 next hop, reject and non-default routes skipped', async (t) => {
  t.equal(defaultGatewayIpv4(ROUTE), '192.0.2.1')
  t.equal(defaultGatewayIpv4(ROUTE.replace('\t100\t', '\t900\t')), '192.168.1.1', 'the other route wins on metric')
  t.equal(defaultGatewayIpv4(ROUTE.split('\n').filter((l) => !l.includes('\t00000000\t0')).join('\n')), undefined)
  t.equal(defaultGatewayIpv4(''), undefined)
  t.equal(defaultGatewayIpv6(IPV6_ROUTE), 'fd00::1')
  t.equal(defaultGatewayIpv6(IPV6_ROUTE.split('\n')[2]!), undefined, 'the lo reject route is no gateway')
})

t.test('file source: reads the JSON at every call; missing or malformed files reject with the reason', async (t) => {
  let text = JSON.stringify({ addresses: ['10.0.0.5'], defaultGateway: '10.0.0.1' })
  const source = fileLocationSource('/loc.json', async () => text)
  t.same(await source.read(), { addresses: ['10.0.0.5'], defaultGateway: '10.0.0.1' })
  text = JSON.stringify({ addresses: ['10.0.0.6'] })
  t.same(await source.read(), { addresses: ['10.0.0.6'] })
  for (const [bad, reason] of [
    ['not json', /location file \/loc\.json/],
    ['[]', /not a JSON object/],
    ['{"addresses":"10.0.0.1"}', /addresses/],
    ['{"addresses":[],"defaultGateway":7}', /defaultGateway/],
    ['{"addresses":[],"gw":"x"}', /unknown key gw/],
  ] as const) {
    text = bad
    await t.rejects(source.read(), reason)
  }
  await t.rejects(fileLocationSource('/nonexistent/gwmo-location.json').read(), /nonexistent/)
})

/** A source whose reading the test sets. */
function settable(initial: NetworkLocation | Error): LocationSource & { set(v: NetworkLocation | Error): void; reads: number } {
  let value = initial
  const source = {
    reads: 0,
    set(v: NetworkLocation | Error) {
      value = v
    },
    read: async () => {
      source.reads++
      if (value instanceof Error) throw value
      return value
    },
  }
  return source
}

async function monitorFixture(initial: NetworkLocation | Error, stateArg?: Awaited<ReturnType<typeof memoryState>>) {
  const { state, store } = stateArg ?? (await memoryState())
  const source = settable(initial)
  const clock = fakeClock()
  const reports: LocationUpdate[] = []
  const dirtyAtReport: boolean[] = []
  const log = captureLog()
  const monitor = new LocationMonitor({
    source,
    state,
    clock,
    pollSeconds: 30,
    report: async (u) => {
      dirtyAtReport.push(state.dirty)
      reports.push(u)
    },
    logger: log.logger,
  })
  return { monitor, source, clock, reports, dirtyAtReport, state, store, log }
}

const HOME: NetworkLocation = { addresses: ['192.0.2.7', '2001:db8::7'], defaultGateway: '192.0.2.1' }

t.test('the first reading after a factory start records only; the same place again reports nothing', async (t) => {
  const f = await monitorFixture(HOME)
  t.equal(await f.monitor.check(), 'recorded')
  t.same(f.reports, [])
  t.same(f.monitor.recorded().location, { addresses: ['192.0.2.7', '2001:db8::7'].sort(), defaultGateway: '192.0.2.1' })
  f.source.set({ ...HOME, addresses: [...HOME.addresses].reverse() })
  t.equal(await f.monitor.check(), 'unchanged', 'address order is not a move')
  t.same(f.reports, [])
})

t.test('a restart in the same place reports nothing; a restart somewhere else reports', async (t) => {
  const first = await monitorFixture(HOME)
  await first.monitor.check()
  t.notOk(first.state.dirty, 'the record was saved')

  const reopened = await memoryState(first.store)
  const second = await monitorFixture(HOME, reopened)
  t.equal(await second.monitor.check(), 'unchanged')
  t.same(second.reports, [])

  const third = await monitorFixture({ addresses: ['198.51.100.9'], defaultGateway: '198.51.100.1' }, await memoryState(first.store))
  t.equal(await third.monitor.check(), 'changed')
  t.same(third.reports, [{ devAddresses: ['198.51.100.9'] }])
})

t.test('another address or another default gateway is a change, persisted before it is reported', async (t) => {
  const f = await monitorFixture(HOME)
  await f.monitor.check()
  f.source.set({ addresses: ['192.0.2.8', '2001:db8::7'], defaultGateway: '192.0.2.1' })
  t.equal(await f.monitor.check(), 'changed')
  t.same(f.reports, [{ devAddresses: ['192.0.2.8', '2001:db8::7'] }])
  t.same(f.dirtyAtReport, [false], 'the new location was saved before the report')
  t.same((f.state.slot(LOCATION_SLOT) as { location: unknown }).location, { addresses: ['192.0.2.8', '2001:db8::7'], defaultGateway: '192.0.2.1' })

  f.source.set({ addresses: ['192.0.2.8', '2001:db8::7'], defaultGateway: '192.0.2.254' })
  t.equal(await f.monitor.check(), 'changed', 'default gateway alone')
  f.source.set({ addresses: ['192.0.2.8', '2001:db8::7'] })
  t.equal(await f.monitor.check(), 'changed', 'default route gone')
  t.equal(f.reports.length, 3)
})

t.test('no address, or an unreadable source, skips the poll and keeps the record', async (t) => {
  const f = await monitorFixture({ addresses: [] })
  t.equal(await f.monitor.check(), 'skipped')
  t.same(f.monitor.recorded(), {})
  f.source.set(HOME)
  t.equal(await f.monitor.check(), 'recorded')
  f.source.set({ addresses: [], defaultGateway: '192.0.2.1' })
  t.equal(await f.monitor.check(), 'skipped', 'off the network is not a new place')
  f.source.set(new Error('EACCES'))
  t.equal(await f.monitor.check(), 'skipped')
  t.match(f.log.text(), /network location unavailable/)
  f.source.set(HOME)
  t.equal(await f.monitor.check(), 'unchanged', 'back in the same place: nothing to report')
  t.same(f.reports, [])
})

t.test('detections: the first gateway is recorded, another gateway is a change, sharing decides GwAddress', async (t) => {
  const f = await monitorFixture(HOME)
  await f.monitor.check()
  t.equal(await f.monitor.gatewayDetected({ id: 'http://gw1', address: '203.0.113.1', share: true }), 'recorded')
  t.same(f.reports, [], 'the first gateway ever is not a move')
  t.equal(await f.monitor.gatewayDetected({ id: 'http://gw1', address: '203.0.113.1', share: true }), 'unchanged')

  t.equal(await f.monitor.gatewayDetected({ id: 'http://gw2', address: '203.0.113.2', share: true }), 'changed')
  t.same(f.reports.at(-1), { devAddresses: [...HOME.addresses].sort(), gwAddress: '203.0.113.2' })

  t.equal(await f.monitor.gatewayDetected({ id: 'http://gw3', address: '203.0.113.3', share: false }), 'changed')
  t.same(f.reports.at(-1), { devAddresses: [...HOME.addresses].sort() }, 'no GwAddress without sharing')
  t.notMatch(JSON.stringify(f.reports), /203\.0\.113\.3/)
  t.notMatch(f.log.text(), /203\.0\.113\.3/, 'nor in any log line')

  f.source.set({ ...HOME, addresses: ['192.0.2.99'] })
  t.equal(await f.monitor.check(), 'changed')
  t.same(f.reports.at(-1), { devAddresses: ['192.0.2.99'] }, 'gw3 still does not share')
})

t.test('the same gateway with another address is another gateway', async (t) => {
  const f = await monitorFixture(HOME)
  await f.monitor.check()
  await f.monitor.gatewayDetected({ id: 'http://gw1', address: '203.0.113.1', share: true })
  t.equal(await f.monitor.gatewayDetected({ id: 'http://gw1', address: '203.0.113.10', share: true }), 'changed')
  t.same(f.reports.at(-1)?.gwAddress, '203.0.113.10')
})

t.test('a shared gateway is in the Location Update until the default gateway changes', async (t) => {
  const f = await monitorFixture(HOME)
  await f.monitor.check()
  await f.monitor.gatewayDetected({ id: 'http://gw1', address: '203.0.113.1', share: true })
  f.source.set({ ...HOME, addresses: ['192.0.2.8'] })
  t.equal(await f.monitor.check(), 'changed')
  t.same(f.reports.at(-1), { devAddresses: ['192.0.2.8'], gwAddress: '203.0.113.1' }, 'same network: still its gateway')
  f.source.set({ addresses: ['198.51.100.8'], defaultGateway: '198.51.100.1' })
  t.equal(await f.monitor.check(), 'changed')
  t.same(f.reports.at(-1), { devAddresses: ['198.51.100.8'] }, 'another network: the old gateway is not reported')
  t.equal(await f.monitor.gatewayDetected({ id: 'http://gw1', address: '203.0.113.1', share: true }), 'recorded',
    'detected by the same gateway again: current again, not a move')
  f.source.set({ addresses: ['198.51.100.9'], defaultGateway: '198.51.100.1' })
  await f.monitor.check()
  t.same(f.reports.at(-1), { devAddresses: ['198.51.100.9'], gwAddress: '203.0.113.1' })
})

t.test('a detection before any reading keeps the gateway and records the location it can read', async (t) => {
  const f = await monitorFixture(new Error('no source yet'))
  t.equal(await f.monitor.gatewayDetected({ id: 'http://gw1', address: '203.0.113.1', share: false }), 'recorded')
  t.same(f.monitor.recorded(), { gateway: { id: 'http://gw1', address: '203.0.113.1', share: false, current: true } })
  f.source.set(HOME)
  t.equal(await f.monitor.check(), 'recorded')
  t.same(f.reports, [])
})

t.test('polling: at start, then every pollSeconds; stop ends it', async (t) => {
  const f = await monitorFixture(HOME)
  f.monitor.start()
  await settle()
  t.equal(f.source.reads, 1)
  t.equal(f.clock.pending, 1)
  f.source.set({ ...HOME, addresses: ['192.0.2.50'] })
  f.clock.advance(29_999)
  await settle()
  t.equal(f.source.reads, 1, 'not before pollSeconds')
  f.clock.advance(1)
  await settle()
  t.equal(f.source.reads, 2)
  t.same(f.reports, [{ devAddresses: ['192.0.2.50'] }])
  await f.monitor.stop()
  t.equal(f.clock.pending, 0)
  f.clock.advance(300_000)
  await settle()
  t.equal(f.source.reads, 2)

  f.monitor.start()
  void f.monitor.stop()
  f.monitor.start()
  await settle()
  t.equal(f.clock.pending, 1, 'a stop and start in a row leave one poll loop')
  await f.monitor.stop()
})

t.test('a source that stays unavailable warns once, then says when it is back', async (t) => {
  const f = await monitorFixture(new Error('ENOENT'))
  for (let k = 0; k < 5; k++) t.equal(await f.monitor.check(), 'skipped')
  t.equal(f.log.lines.filter((l) => l.level === 'warn').length, 1)
  f.source.set(HOME)
  t.equal(await f.monitor.check(), 'recorded')
  t.ok(f.log.lines.some((l) => l.msg === 'network location available again'))
})

t.test('a failing report is logged and polling goes on', async (t) => {
  const { state } = await memoryState()
  const source = settable(HOME)
  const clock = fakeClock()
  const log = captureLog()
  const monitor = new LocationMonitor({
    source, state, clock, pollSeconds: 5, logger: log.logger,
    report: () => Promise.reject(new Error('queue full')),
  })
  await monitor.check()
  source.set({ addresses: ['10.1.1.1'] })
  monitor.start()
  await settle()
  t.match(log.text(), /location check failed/)
  t.equal(clock.pending, 1)
  t.same(monitor.recorded().location, { addresses: ['10.1.1.1'] }, 'the location stays recorded')
  await monitor.stop()
})

// ---------------------------------------------------------------------------------------------------------------
// Through the whole device: the session engine carries the Location Update to each DM Server.

const SRV1 = 'http://www.someDMServer.com'
const SRV2 = 'http://www.nextDMServer.com'
const GW = 'http://gw.local'
const WORLD_ACCOUNTS: PartySpec[] = [
  { x: 'srv1', serverId: SRV1 },
  { x: 'srv2', serverId: SRV2 },
  { x: 'gw', serverId: GW, role: 'gateway' },
]

function locationUpdates(w: World, server: string) {
  return w.to(server).flatMap((m) => genericAlerts(m.message)).filter((a) => a.type === 'urn:oma:gwmo:1.0:LocationUpdate')
}

t.test('a location change: a Location Update to each DM Server (not the gateway), in a 1201 session with each', async (t) => {
  const w = await gwmoWorld({ accounts: WORLD_ACCOUNTS, location: HOME })
  w.gwmo.start()
  await w.settle()
  t.same(w.sent, [], 'the first reading is only recorded')
  w.source.set({ addresses: ['198.51.100.7'], defaultGateway: '198.51.100.1' })
  w.clock.advance(30_000)
  await w.settle()
  for (const server of [SRV1, SRV2]) {
    const [p1] = w.to(server)
    t.equal(p1?.message.commands.find((c) => c.name === 'Alert' && c.data !== '1226')?.data, '1201', `session with ${server}`)
    const updates = locationUpdates(w, server)
    t.equal(updates.length, 1)
    t.match(updates[0], { format: 'text/plain', source: DEVICE, target: server })
    t.equal(updates[0]!.data, '<LocationUpdate><DevAddress>198.51.100.7</DevAddress></LocationUpdate>')
  }
  t.same(w.to(GW), [], 'the gateway is not a DM Server')
  for (const server of [SRV1, SRV2]) await w.party(server).closeAll()
  t.same([w.state.pendingAlerts(SRV1), w.state.pendingAlerts(SRV2)], [[], []], 'acknowledged: no longer queued')
  await w.stop()
})

t.test('same place after a restart: nothing reported; moved while off: reported once', async (t) => {
  const w = await gwmoWorld({ accounts: WORLD_ACCOUNTS, location: HOME })
  w.gwmo.start()
  await w.settle()
  const again = await w.restart({ location: { ...HOME, addresses: [...HOME.addresses].reverse() } })
  again.gwmo.start()
  await again.settle()
  again.clock.advance(300_000)
  await again.settle()
  t.same(again.sent, [], 'same place: no session, no alert')

  const moved = await again.restart({ location: { addresses: ['10.9.9.9'], defaultGateway: '10.9.9.1' } })
  moved.gwmo.start()
  await moved.settle()
  t.equal(locationUpdates(moved, SRV1).length, 1)
  t.equal(locationUpdates(moved, SRV2).length, 1)
  for (const server of [SRV1, SRV2]) await moved.party(server).closeAll()
  const sent = moved.sent.length
  moved.clock.advance(300_000)
  await moved.settle()
  t.equal(moved.sent.length, sent, 'reported once, not at every poll')
  await moved.stop()
})

t.test('an unacknowledged Location Update stays queued and goes out again after a restart', async (t) => {
  const w = await gwmoWorld({ accounts: WORLD_ACCOUNTS, location: HOME })
  await w.gwmo.location.check()
  w.source.set({ addresses: ['10.9.9.9'] })
  await w.gwmo.location.check()
  await w.settle()
  t.equal(w.state.pendingAlerts(SRV1).length, 1)
  const again = await w.restart({ location: { addresses: ['10.9.9.9'] } })
  t.equal(again.state.pendingAlerts(SRV1).length, 1, 'persisted')
  await again.sessions.openSession(SRV1, { alert: 1201 })
  await again.settle()
  t.equal(locationUpdates(again, SRV1).length, 1, 'in the next session')
  await again.stop()
})

t.test('installGwmo: location.sourceFile is read; enabled false means no polling', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-location-'))
  const file = join(dir, 'location.json')
  writeFileSync(file, JSON.stringify({ addresses: ['192.0.2.70'], defaultGateway: '192.0.2.1' }))
  const w = await gwmoWorld({ accounts: WORLD_ACCOUNTS })
  const registered: string[] = []
  const make = (enabled: boolean) =>
    installGwmo({
      sessions: { ...w.sessions, registerAlert: (code) => void registered.push(String(code)) },
      tree: w.tree,
      state: w.state,
      deviceId: DEVICE,
      config: { acceptDetectionFrom: 'bootstrapped', location: { pollSeconds: 5, enabled, sourceFile: file } },
      clock: w.clock,
      logger: w.log.logger,
    })
  const off = make(false)
  off.start()
  await off.stop() // waits for a check under way, had start() begun one
  t.same(off.location.recorded(), {}, 'no reading taken')

  const on = make(true)
  on.start()
  t.equal(await on.location.check(), 'unchanged', 'queued behind the check start() made, which recorded the place')
  t.same(on.location.recorded().location, { addresses: ['192.0.2.70'], defaultGateway: '192.0.2.1' }, 'read from the file')
  t.same(registered, ['1230', '1230'], 'the Device Detection Alert is registered')
  await on.stop()
  await w.stop()
})
