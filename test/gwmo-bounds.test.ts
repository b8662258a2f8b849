// GwMO's bounds (binding.md §11): one Device Detection Alert counts in a message, detections are rate-limited per
// gateway, and the alerts they lead to wait one of each type per server, the newest.
import t from 'tap'
import { GWMO_ALERT_TYPE } from '../src/codec/gwmo.ts'
import { findAccount } from '../src/tree/accounts.ts'
import { detectionAlert } from './peers/gateway.ts'
import { genericAlerts, gwmoWorld, statusFor, type PartySpec, type World } from './helpers/gwmo-harness.ts'

const GW = 'http://gw.local'
const SRV1 = 'http://www.someDMServer.com'
const SRV2 = 'http://www.nextDMServer.com'
const ACCOUNTS: PartySpec[] = [
  { x: 'srv1', serverId: SRV1 },
  { x: 'srv2', serverId: SRV2 },
  { x: 'gw', serverId: GW, role: 'gateway' },
]

const codes = (reply: { commands: { name: string; cmd?: string; data?: string }[] }) =>
  reply.commands.filter((c) => c.name === 'Status' && c.cmd === 'Alert').map((c) => c.data)

/** The Generic Alerts waiting for a server, as `type data`. */
function waiting(w: World, server: string): string[] {
  return w.state.pendingAlerts(server).map((p) => `${p.alert.type.split(':').at(-1)} ${String(p.alert.data)}`)
}

t.test('one Device Detection Alert counts in a message: the others are answered 406 and run nothing', async (t) => {
  const w = await gwmoWorld({ accounts: ACCOUNTS })
  const detections = Array.from({ length: 25 }, (_, k) => detectionAlert({ gwAddress: `192.0.2.${k + 1}`, share: true }))
  const replies = await w.party(GW).push(detections)
  const reply = replies[0]!.message
  t.same(codes(reply), ['200', ...Array(24).fill('406')], 'the first counts, 406 for each other')
  t.equal(genericAlerts(reply).length, 1, 'one Bootstrapped DMS List')
  await w.settle()
  for (const server of [SRV1, SRV2]) {
    t.same(waiting(w, server).filter((a) => a.startsWith('AssociatedGateway')), ['AssociatedGateway <GwAddress>192.0.2.1</GwAddress>'], `one Associated Gateway for ${server}, the first's`)
  }
  t.equal(w.log.lines.filter((l) => l.msg === 'device detection refused: one a message counts').length, 1, 'one log line for the 24')
  await w.stop()
})

t.test('detections are rate-limited per gateway: over the rate, 417 and nothing happens; later, one counts again', async (t) => {
  const accounts = [...ACCOUNTS, { x: 'gw2', serverId: 'http://gw2.local', role: 'gateway' as const }]
  const w = await gwmoWorld({ accounts, config: { detectionsPerMinute: 2 } })
  const answer = async (gateway: string, address: string) => (await w.party(gateway).push([detectionAlert({ gwAddress: address, share: true })]))[0]!.message
  t.same(codes(await answer(GW, '192.0.2.1')), ['200'])
  t.same(codes(await answer(GW, '192.0.2.2')), ['200'])
  await w.settle()
  const before = [waiting(w, SRV1), waiting(w, SRV2), w.state.pendingAlerts(GW).length]
  const sentBefore = w.sent.length
  const over = await answer(GW, '192.0.2.3')
  t.same(codes(over), ['417'], 'the third within the minute: 417 (Retry later)')
  t.same(genericAlerts(over), [], 'no list in the answer')
  await w.settle()
  t.same([waiting(w, SRV1), waiting(w, SRV2), w.state.pendingAlerts(GW).length], before, 'nothing queued')
  // The gateway's session may begin with one challenge (binding.md §6); nothing goes to anyone else.
  t.same(w.sent.slice(sentBefore).filter((m) => m.to !== GW).map((m) => m.to), [], 'no session opened')
  t.same(codes(await answer('http://gw2.local', '192.0.2.9')), ['200'], 'another gateway has its own rate')
  w.clock.advance(30_000)
  t.same(codes(await answer(GW, '192.0.2.4')), ['200'], 'half a minute later, one more counts')
  t.equal(w.log.lines.filter((l) => l.msg === 'device detection refused: over the rate for the gateway').length, 1)
  await w.stop()
})

t.test('one Associated Gateway and one Location Update wait per server, the newest replacing the older', async (t) => {
  const w = await gwmoWorld({ accounts: ACCOUNTS, config: { detectionsPerMinute: 100 } })
  const other = 'http://gw2.local'
  for (let k = 1; k <= 12; k++) {
    // Alternating gateways: each detection is a move (binding.md §4.6), each with an address to share.
    const gateway = k % 2 === 0 ? GW : other
    await w.party(gateway).push([detectionAlert({ gwAddress: `198.51.100.${k}`, share: true })], { auth: gateway === GW ? 'good' : 'none' })
    await w.settle()
  }
  for (const server of [SRV1, SRV2]) {
    const queue = waiting(w, server)
    t.equal(queue.filter((a) => a.startsWith('AssociatedGateway')).length, 1, `${server}: one Associated Gateway`)
    t.ok(queue.includes('AssociatedGateway <GwAddress>198.51.100.12</GwAddress>'), 'the newest')
    t.equal(queue.filter((a) => a.startsWith('LocationUpdate')).length, 1, `${server}: one Location Update`)
    t.match(queue.find((a) => a.startsWith('LocationUpdate')), /198\.51\.100\.12/, 'the newest')
    t.equal(queue.length, 2)
  }
  await w.stop()
})

t.test('with acceptDetectionFrom "any", strangers under ever new names queue at most one of each per server', async (t) => {
  const w = await gwmoWorld({ accounts: ACCOUNTS, acceptDetectionFrom: 'any' })
  for (let k = 0; k < 30; k++) {
    const replies = await w.party(`http://stranger-${k}.example`).push([detectionAlert({ gwAddress: `203.0.113.${k}`, share: true })], { auth: 'none' })
    t.equal(statusFor(replies[0]!.message, '1'), '200')
    await w.settle()
  }
  for (const server of [SRV1, SRV2]) t.equal(waiting(w, server).length, 2, `${server}: one Associated Gateway and one Location Update`)
  t.equal(findAccount(w.tree, 'http://stranger-0.example'), undefined, 'and no account for any of them')
  await w.stop()
})

t.test('alerts queued before coalescing (a state restored from an older run) are coalesced by the next report', async (t) => {
  const w = await gwmoWorld({ accounts: ACCOUNTS })
  for (let k = 0; k < 5; k++) w.state.enqueueAlert(SRV1, { type: GWMO_ALERT_TYPE.ASSOCIATED_GATEWAY, data: `<GwAddress>10.0.0.${k}</GwAddress>` }, 0)
  await w.party(GW).push([detectionAlert({ gwAddress: '10.0.0.4', share: true })])
  await w.settle()
  t.same(waiting(w, SRV1).filter((a) => a.startsWith('AssociatedGateway')), ['AssociatedGateway <GwAddress>10.0.0.4</GwAddress>'],
    'the equal one, the newest, stays; the older go')
  t.same(waiting(w, SRV2).filter((a) => a.startsWith('AssociatedGateway')), ['AssociatedGateway <GwAddress>10.0.0.4</GwAddress>'])
  await w.stop()
})

t.test('bootstrap refusals that no MAC check throttles are logged once a second, with the count of those left out', async (t) => {
  const w = await gwmoWorld({ accounts: ACCOUNTS, config: { networkId: 'net-secret' } })
  const junk = { channel: 'bootstrap' as const, payload: new Uint8Array(Buffer.from('<SyncML/>')), contentType: 'application/vnd.syncml.dm+xml', properties: {} }
  for (let k = 0; k < 25; k++) t.match(await w.gwmo.onBootstrap(junk), { ok: false, stage: 'mac' })
  const lines = () => w.log.lines.filter((l) => l.msg === 'bootstrap refused')
  t.equal(lines().length, 1, 'one line for 25 bootstraps without SEC')
  w.clock.advance(1000)
  await w.gwmo.onBootstrap(junk)
  t.equal(lines().length, 2)
  t.equal(lines()[1]!.suppressed, 24)
  await w.stop()
})
