/**
 * Gateway bootstrap by a DM Server (GwMO seed 001, 8.4.1; binding.md §4.5). The device lets the tree decide
 * whether a server may write a gateway's account, whatever the session: the seed names when a server may do it
 * (its first session, a session reporting a Location Update), not when the device must refuse it. The tree's
 * rules (binding.md §6) take only a gateway's account from a server, and give it to the gateway.
 */
import t from 'tap'
import { findAccount } from '../src/tree/accounts.ts'
import { buildAccountCommands, type AccountSpec } from './peers/bootstrap-server.ts'
import { replace } from './peers/commands.ts'
import { detectionAlert } from './peers/gateway.ts'
import { DEVICE, genericAlerts, gwmoWorld, SERVER_SECRET, statusFor, type PartySpec, type SentMessage, type World } from './helpers/gwmo-harness.ts'
import { durableTree } from './helpers/stores.ts'

const SRV = 'http://www.someDMServer.com'
const GW = 'http://gw.local'
const ACCOUNTS: PartySpec[] = [{ x: 'srv', serverId: SRV }]

/** The gateway's account as the server writes it; the gateway authenticates with these credentials. */
const GATEWAY_ACCOUNT: AccountSpec = {
  id: 'gw',
  serverId: GW,
  addr: 'mqtt://broker.example:1883/omadm/v1/gw',
  clientName: 'device-at-gw',
  clientPassword: 'gw-client-secret',
  serverName: GW,
  serverPassword: SERVER_SECRET,
  role: 'gateway',
}

/** Status codes the device gave the server's commands, in order. */
function statusesOf(reply: SentMessage): string[] {
  return reply.message.commands.filter((c) => c.name === 'Status' && c.cmd !== 'SyncHdr').map((c) => c.data ?? '')
}

async function detectionAccepted(w: World): Promise<boolean> {
  const replies = await w.party(GW).push([detectionAlert({ gwAddress: '203.0.113.1', share: false })])
  const reply = replies[0]?.message
  return reply !== undefined && statusFor(reply, '1') === '200' &&
    genericAlerts(reply).some((a) => a.type === 'urn:oma:gwmo:1.0:BootstrappedDMSList')
}

t.test('in the first session: the server adds the gateway account, and the device accepts that gateway from then on', async (t) => {
  const w = await gwmoWorld({ accounts: ACCOUNTS })
  t.notOk(await detectionAccepted(w), 'before: the gateway is a stranger, no answer')
  t.same(w.to(GW), [])

  await w.sessions.openSession(SRV, { alert: 1201 })
  await w.settle()
  const [reply] = await w.party(SRV).respond(buildAccountCommands(GATEWAY_ACCOUNT))
  t.ok(reply, 'the device answers the commands')
  t.ok(statusesOf(reply!).every((code) => code === '200'), 'every Add succeeded')
  // Stored with the message's commit; the fresh nonce of the reply's Chal may follow lazily.
  const stored = await durableTree(w.stores.tree)
  t.ok(stored.ok && findAccount(stored.tree, GW), 'the account is durable before the 200s leave')
  await w.party(SRV).closeAll()
  t.equal(findAccount(w.tree, GW)?.role, 'gateway', 'the server wrote the Role')

  t.ok(await detectionAccepted(w), 'after: its detection is accepted')

  const restarted = await w.restart()
  t.equal(findAccount(restarted.tree, GW)?.role, 'gateway', 'both survive a restart')
  await restarted.stop()
})

t.test('in a session reporting a Location Update: the server adds the account of the new gateway', async (t) => {
  const w = await gwmoWorld({ accounts: ACCOUNTS, location: { addresses: ['192.0.2.7'], defaultGateway: '192.0.2.1' } })
  await w.gwmo.location.check()
  w.source.set({ addresses: ['198.51.100.7'], defaultGateway: '198.51.100.1' })
  t.equal(await w.gwmo.location.check(), 'changed')
  await w.settle()
  const package1 = w.to(SRV)[0]!
  t.ok(genericAlerts(package1.message).some((a) => a.type === 'urn:oma:gwmo:1.0:LocationUpdate' && a.source === DEVICE))
  const [reply] = await w.party(SRV).respond(buildAccountCommands(GATEWAY_ACCOUNT))
  t.ok(statusesOf(reply!).every((code) => code === '200'))
  await w.party(SRV).closeAll()
  t.equal(w.state.pendingAlerts(SRV).length, 0, 'the Location Update was acknowledged')
  t.equal(findAccount(w.tree, GW)?.role, 'gateway', 'the server wrote the Role itself')
  t.ok(await detectionAccepted(w))
  await w.stop()
})

t.test('in any later session the ACL decides: the standard tree lets a server add a gateway\'s account', async (t) => {
  const w = await gwmoWorld({ accounts: ACCOUNTS })
  await w.sessions.openSession(SRV, { alert: 1201 })
  await w.settle()
  await w.party(SRV).closeAll()
  t.equal(w.state.accountFlag(SRV, 'firstSessionDone'), true, 'the first session is over')
  const replies = await w.party(SRV).push(buildAccountCommands(GATEWAY_ACCOUNT))
  t.ok(statusesOf(replies[0]!).every((code) => code === '200'), 'a server-pushed session adds it')
  t.ok(await detectionAccepted(w))
  await w.stop()
})

t.test('a server the ACL does not let add accounts gets 425, and the gateway stays a stranger', async (t) => {
  const w = await gwmoWorld({ accounts: ACCOUNTS })
  // A factory bootstrap may narrow ./DMAcc: here only the device itself may add accounts.
  t.equal(w.tree.replace('./DMAcc?prop=ACL', { format: 'chr', data: 'Get=*' }, 'device'), 200)
  const replies = await w.party(SRV).push(buildAccountCommands(GATEWAY_ACCOUNT))
  const codes = statusesOf(replies[0]!)
  t.equal(codes[0], '425', 'the account node is refused')
  t.notOk(codes.includes('200'), 'and nothing under it is written')
  t.same(w.tree.children('./DMAcc'), ['srv'], 'no account added')
  t.notOk(await detectionAccepted(w))
  await w.stop()
})

t.test('a server cannot take over another party\'s account', async (t) => {
  const w = await gwmoWorld({ accounts: [...ACCOUNTS, { x: 'gw', serverId: GW, role: 'gateway' }] })
  const replies = await w.party(SRV).push([replace('./DMAcc/gw/AppAuth/2/AAuthSecret', 'attacker-chosen')])
  t.equal(statusesOf(replies[0]!)[0], '425')
  t.equal(w.tree.readSecret('./DMAcc/gw/AppAuth/2/AAuthSecret'), SERVER_SECRET)
  await w.stop()
})

t.test('an account that is not a gateway\'s is refused whole (500), nothing stored', async (t) => {
  const w = await gwmoWorld({ accounts: ACCOUNTS })
  const { role: _role, ...serverAccount } = GATEWAY_ACCOUNT
  const replies = await w.party(SRV).push(buildAccountCommands(serverAccount))
  const codes = statusesOf(replies[0]!)
  t.ok(codes.length > 0 && codes.every((code) => code === '500'), 'every write answers 500 once the commit is refused')
  t.equal(findAccount(w.tree, GW), undefined)
  t.match(w.log.text(), /Ext\/GwMO\/Role: missing: a DM Server adds only a gateway's account/)
  t.notOk(await detectionAccepted(w))
  await w.stop()
})

t.test('an account that breaks the DMAcc rules is refused whole (500), nothing stored', async (t) => {
  const w = await gwmoWorld({ accounts: ACCOUNTS })
  const incomplete = buildAccountCommands(GATEWAY_ACCOUNT).filter((c) => !('items' in c) || !(c.items ?? []).some((i) => i.target?.endsWith('/AppID')))
  const replies = await w.party(SRV).push(incomplete)
  t.ok(statusesOf(replies[0]!).includes('500'), 'the writes answer 500 once the commit is refused')
  t.equal(findAccount(w.tree, GW), undefined)
  t.notOk(await detectionAccepted(w))
  await w.stop()
})
