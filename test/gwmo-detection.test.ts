import t from 'tap'
import { findAccount } from '../src/tree/accounts.ts'
import { detectionAlert, parseServerList, type DetectionForm } from './peers/gateway.ts'
import { add, alert, atomic, get } from './peers/commands.ts'
import { DEVICE, genericAlerts, gwmoWorld, statusFor, type PartySpec } from './helpers/gwmo-harness.ts'
import { durableTree } from './helpers/stores.ts'

const GW = 'http://gw.local'
const SRV1 = 'http://www.someDMServer.com'
const SRV2 = 'http://www.nextDMServer.com'
const OTHER_GW = 'http://gw2.local'
const ACCOUNTS: PartySpec[] = [
  { x: 'srv1', serverId: SRV1 },
  { x: 'srv2', serverId: SRV2 },
  { x: 'gw', serverId: GW },
  { x: 'gw2', serverId: OTHER_GW, role: 'gateway' },
]
const GW_ADDRESS = '2002:0:0:0:0:0:9da6:e219'

const forms: DetectionForm[] = ['item-escaped', 'item-cdata', 'inline-cdata']
const shares = [['True', true], ['true', true], ['1', true], ['False', false], ['false', false], ['0', false]] as const

for (const form of forms) {
  for (const addrElement of ['GwAddress', 'GwAddr'] as const) {
    for (const [shareText, share] of shares) {
      t.test(`detection ${form} <${addrElement}> Share=${shareText} from an authenticated gateway account`, async (t) => {
        const w = await gwmoWorld({ accounts: ACCOUNTS })
        const replies = await w.party(GW).push([detectionAlert({ gwAddress: GW_ADDRESS, share, shareText, form, addrElement })])
        t.equal(replies.length, 1, 'one reply to the gateway')
        const reply = replies[0]!.message
        t.equal(reply.commands.find((c) => c.cmd === 'SyncHdr')?.data, '212')
        t.equal(statusFor(reply, '1'), '200', 'the alert is accepted')
        const lists = genericAlerts(reply)
        t.equal(lists.length, 1)
        t.match(lists[0], { type: 'urn:oma:gwmo:1.0:BootstrappedDMSList', format: 'text/plain', source: DEVICE, target: GW })
        t.same(parseServerList(lists[0]!.data.trim()), [SRV1, SRV2], 'every DM Server, no gateway')

        t.equal(findAccount(w.tree, GW)?.role, 'gateway', 'the account is marked as a gateway')
        // The mark is stored with the message's commit; the fresh nonce of the reply's Chal may follow lazily.
        const stored = await durableTree(w.stores.tree)
        t.equal(stored.ok && findAccount(stored.tree, GW)?.role, 'gateway', 'and that is durable before the reply')

        await w.settle()
        const associated = [SRV1, SRV2].map((s) => w.to(s).flatMap((m) => genericAlerts(m.message)))
        if (share) {
          for (const [k, server] of [SRV1, SRV2].entries()) {
            const sessionAlert = w.to(server)[0]?.message.commands.find((c) => c.name === 'Alert' && c.data !== '1226')
            t.equal(sessionAlert?.data, '1201', `a session with ${server}`)
            t.equal(associated[k]!.length, 1)
            t.match(associated[k]![0], { type: 'urn:oma:gwmo:1.0:AssociatedGateway', format: 'text/plain', source: DEVICE, target: server })
            t.match(associated[k]![0]!.data, new RegExp(`<GwAddress>\\s*${GW_ADDRESS}\\s*</GwAddress>`))
          }
        } else {
          t.same(associated, [[], []], 'no Associated Gateway alert')
          t.notOk(w.wire().includes(GW_ADDRESS), 'the address is in no outbound payload')
          t.notOk(w.log.text().includes(GW_ADDRESS), 'nor in any log line, debug included')
        }
        await w.stop()
      })
    }
  }
}

t.test('a party without an account gets no answer at all, and nothing changes', async (t) => {
  const w = await gwmoWorld({ accounts: ACCOUNTS })
  const before = Buffer.from(w.tree.serialize()).toString('base64')
  const replies = await w.party('http://stranger.local').push([detectionAlert({ gwAddress: GW_ADDRESS, share: true })], { auth: 'none' })
  await w.settle()
  t.same(replies, [])
  t.same(w.sent, [], 'nothing sent anywhere')
  t.equal(Buffer.from(w.tree.serialize()).toString('base64'), before)
  t.match(w.log.text(), /party without an account dropped/)
  await w.stop()
})

t.test('bad credentials get 401 with a challenge, missing ones 407; nothing runs', async (t) => {
  const w = await gwmoWorld({ accounts: ACCOUNTS })
  for (const [auth, code] of [['bad', '401'], ['none', '407']] as const) {
    const replies = await w.party(GW).push([detectionAlert({ gwAddress: GW_ADDRESS, share: true })], { auth })
    t.equal(replies.length, 1)
    const header = replies[0]!.message.commands.find((c) => c.cmd === 'SyncHdr')
    t.equal(header?.data, code)
    t.equal(header?.chal?.type, 'syncml:auth-md5')
    t.ok(header?.chal?.nextNonce, 'a fresh nonce')
    t.equal(statusFor(replies[0]!.message, '1'), code, 'the alert is not run')
    t.same(genericAlerts(replies[0]!.message), [])
  }
  await w.settle()
  t.equal(findAccount(w.tree, GW)?.role, 'server', 'not marked')
  t.same(w.to(SRV1), [])
  await w.stop()
})

t.test('acceptDetectionFrom any: an unknown party is accepted without credentials, and no account appears', async (t) => {
  const w = await gwmoWorld({ accounts: ACCOUNTS, acceptDetectionFrom: 'any' })
  const stranger = 'http://lan-gw.local'
  const replies = await w.party(stranger).push([detectionAlert({ gwAddress: '192.168.4.1', share: true, form: 'inline-cdata' })], { auth: 'none' })
  t.equal(replies.length, 1)
  t.equal(replies[0]!.message.commands.find((c) => c.cmd === 'SyncHdr')?.data, '200')
  t.equal(statusFor(replies[0]!.message, '1'), '200')
  const [list] = genericAlerts(replies[0]!.message)
  t.same(parseServerList(list!.data.trim()), [SRV1, SRV2, GW], 'gw has not detected the device yet: still a server')
  t.equal(list!.target, stranger)
  t.equal(findAccount(w.tree, stranger), undefined)
  await w.settle()
  t.equal(w.to(SRV1).length, 1, 'associated gateway to the servers')

  const more = await w.party(stranger).push([get('./DevInfo/DevId')], { auth: 'none' })
  t.same(more, [], 'only the detection is let in: any other command from a stranger gets nothing')

  await w.party(GW).closeAll()
  const gwReplies = await w.party(GW).push([detectionAlert({ gwAddress: GW_ADDRESS, share: true })], { auth: 'bad' })
  t.equal(gwReplies[0]!.message.commands.find((c) => c.cmd === 'SyncHdr')?.data, '401', 'an account holder is held to its credentials')
  await w.stop()
})

t.test('a bad payload gets 400, a log line, and changes nothing', async (t) => {
  const w = await gwmoWorld({ accounts: ACCOUNTS })
  const bad = [
    alert('1230', [{ data: '<Share>true</Share>' }]),
    alert('1230', [{ data: `<GwAddress>${GW_ADDRESS}</GwAddress><Share>maybe</Share>` }]),
    alert('1230', [{ data: '<GwAddress>unclosed' }]),
    alert('1230', []),
  ]
  for (const command of bad) {
    const replies = await w.party(GW).push([command])
    t.equal(statusFor(replies[0]!.message, '1'), '400')
    t.same(genericAlerts(replies[0]!.message), [])
  }
  await w.settle()
  t.equal(findAccount(w.tree, GW)?.role, 'server')
  t.same(w.to(SRV1), [])
  // A line a flood can repeat: one a second, with the count of those left out (binding.md §6, §11).
  const lines = () => w.log.lines.filter((l) => l.msg === 'device detection refused: bad payload')
  t.equal(lines().length, 1)
  w.clock.advance(1000)
  const again = await w.party(GW).push([bad[0]!])
  t.equal(statusFor(again[0]!.message, '1'), '400')
  t.equal(lines().length, 2)
  t.equal(lines()[1]!.suppressed, bad.length - 1)
  t.notOk(w.log.text().includes(GW_ADDRESS), 'the refused payload is not logged')
  await w.stop()
})

t.test('Associated Gateway sessions start only once the detection is stored, after the answer to the gateway', async (t) => {
  const w = await gwmoWorld({ accounts: ACCOUNTS })
  await w.party(GW).push([detectionAlert({ gwAddress: GW_ADDRESS, share: true })])
  await w.settle()
  const firstTo = (party: string) => w.sent.findIndex((m) => m.to === party)
  t.equal(firstTo(GW), 0, 'the gateway\'s answer is the first message out')
  t.ok(firstTo(SRV1) > 0 && firstTo(SRV2) > 0, 'each server\'s session follows it')
  await w.stop()
})

// Regression: the Associated Gateway sessions used to start inside the alert handler, before the message's
// commit, so a detection whose message was refused still told every server about the gateway.
t.test('a detection in a message whose commit the validator refuses starts no session and tells no server', async (t) => {
  const w = await gwmoWorld({ accounts: ACCOUNTS })
  // An account without ServerID and AppAddr is invalid (DMAcc MO): the whole message's changes are refused. It
  // comes before the detection: once marked a gateway, the party could not even write it (binding.md §6).
  const replies = await w.party(GW).push([add('./DMAcc/bad/AppID', 'w7'), detectionAlert({ gwAddress: GW_ADDRESS, share: true })])
  await w.settle()
  t.equal(replies.length, 1, 'the gateway is answered')
  t.equal(statusFor(replies[0]!.message, '1'), '500', 'the refused write gets 500')
  t.not(findAccount(w.tree, GW)?.role, 'gateway', 'the gateway mark went with the refused commit')
  t.same(w.to(SRV1), [], 'no session with the first server')
  t.same(w.to(SRV2), [], 'nor with the second')
  t.same(w.state.pendingAlerts(SRV1), [], 'and no Associated Gateway alert queued')
  t.match(w.log.text(), /commit refused by validation/)
  await w.stop()
})

t.test('a detection inside an Atomic that rolls back starts no session either', async (t) => {
  const w = await gwmoWorld({ accounts: ACCOUNTS })
  const replies = await w.party(GW).push([atomic(detectionAlert({ gwAddress: GW_ADDRESS, share: true }), add('./DevInfo/DevId', 'taken'))])
  await w.settle()
  t.equal(statusFor(replies[0]!.message, '1'), '507', 'the Atomic failed')
  t.not(findAccount(w.tree, GW)?.role, 'gateway', 'the gateway mark was rolled back')
  t.same([...w.to(SRV1), ...w.to(SRV2)], [], 'no server was told')
  await w.stop()
})

t.test('a repeated detection answers again but does not pile up Associated Gateway alerts', async (t) => {
  const w = await gwmoWorld({ accounts: ACCOUNTS })
  await w.party(GW).push([detectionAlert({ gwAddress: GW_ADDRESS, share: true })])
  await w.settle()
  await w.party(GW).push([detectionAlert({ gwAddress: GW_ADDRESS, share: true })])
  await w.settle()
  t.equal(w.state.pendingAlerts(SRV1).length, 1, 'one alert queued for the server')
  await w.party(SRV1).closeSession()
  await w.settle()
  t.equal(w.state.pendingAlerts(SRV1).length, 0, 'acknowledged with 200: dropped from the queue')
  await w.stop()
})

t.test('a detection from another gateway is a location change: Location Update to each server', async (t) => {
  const w = await gwmoWorld({ accounts: ACCOUNTS, location: { addresses: ['192.0.2.7'], defaultGateway: '192.0.2.1' } })
  await w.gwmo.location.check()
  await w.party(OTHER_GW).push([detectionAlert({ gwAddress: '203.0.113.2', share: false })])
  await w.settle()
  t.same(w.to(SRV1), [], 'the first gateway is only recorded')
  await w.party(GW).push([detectionAlert({ gwAddress: '203.0.113.1', share: true })])
  await w.settle()
  for (const server of [SRV1, SRV2]) await w.party(server).closeAll()
  for (const server of [SRV1, SRV2]) {
    const alerts = w.to(server).flatMap((m) => genericAlerts(m.message))
    const update = alerts.find((a) => a.type === 'urn:oma:gwmo:1.0:LocationUpdate')
    t.ok(update, `a Location Update for ${server}`)
    t.match(update?.data, /<LocationUpdate><DevAddress>192\.0\.2\.7<\/DevAddress><GwAddress>203\.0\.113\.1<\/GwAddress><\/LocationUpdate>/)
  }
  t.notOk(w.wire().includes('203.0.113.2'), 'the gateway that does not share is never named')
  await w.stop()
})
