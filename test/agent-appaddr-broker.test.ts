// Regression (finding 9): a gateway account, added by a DM Server (GwMO 8.4.1), whose AppAddr names the device's
// own broker by another name made the agent open a second connection with its own ClientId: the two took each
// other's session over without end, with a retained `offline` each time. binding.md §6: every connection the
// device opens has its own ClientId. The real bundle over mosquitto.
import t from 'tap'
import { startMosquitto } from './helpers/mosquitto.ts'
import { StatusWatcher } from './helpers/agent-process.ts'
import { usernameFor } from './helpers/broker-world.ts'
import { buildAccountCommands } from './peers/bootstrap-server.ts'
import { startDmServer } from './peers/dm-server.ts'
import { startGateway } from './peers/gateway.ts'
import { pushDetection } from './fixtures/gwmo/observe.ts'
import { accountSpec, gatewayOptions, SERVER_A, serverOptions, startGwmoAgent, stranger } from './fixtures/gwmo/parties.ts'

const DEVICE = 'mac:01-ab-34-ef-69-0c'
const CLIENT_ID = `gwmo-${DEVICE}`
const GW = stranger('gw', 'http://gw.example.net', 'gateway')

t.test('a gateway account on the device\'s own broker, named another way: its sessions work and nothing is taken over', async (t) => {
  const broker = await startMosquitto()
  t.teardown(() => broker.stop())
  // The broker listens on 127.0.0.1, the agent's broker.url; the gateway's AppAddr names it `localhost`, with the
  // device's user name on it (its ACL lets that user publish to the gateway).
  const appAddr = `mqtt://${encodeURIComponent(usernameFor(DEVICE))}@localhost:${broker.port}`
  const status = await StatusWatcher.start(broker.url, DEVICE)
  t.teardown(() => status.stop())
  const server = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_A))
  t.teardown(() => server.stop())
  const gateway = await startGateway(gatewayOptions(broker.url, DEVICE, GW))
  t.teardown(() => gateway.stop())
  server.queueSession(buildAccountCommands({ ...accountSpec(GW), addr: appAddr }))

  const agent = startGwmoAgent({ brokerUrl: broker.url, deviceId: DEVICE, parties: [SERVER_A] })
  t.teardown(() => agent.remove())
  await agent.online()
  const first = await server.waitForSession((s) => s.origin === 'device' && s.closed, 15_000)
  t.ok(first.statuses.length > 0 && first.statuses.every((s) => s.code === '200'), 'the server added the gateway account')

  // Each detection is answered over the gateway's AppAddr, so on a connection to that broker.
  for (const round of [1, 2]) {
    const answer = await pushDetection(gateway, { gwAddress: '192.0.2.1', share: false }).catch((error: Error) => error)
    if (answer instanceof Error) {
      t.fail(`detection ${round}: ${answer.message}`)
      continue
    }
    t.equal(answer.alertStatus, '200', `detection ${round}: accepted`)
    t.same(answer.lists, [[SERVER_A.serverId]], `detection ${round}: answered with the DMS list`)
  }

  const opened = agent.logs.filter((l) => l.msg === 'opened connection to a party broker')
  t.equal(opened.length, 1, 'one connection to the AppAddr broker')
  t.match(String(opened[0]?.clientId), new RegExp(`^${CLIENT_ID}/.+`), 'with a ClientId of its own, <clientId>/<account>')
  t.notMatch(broker.log(), /already connected, closing old connection/, 'the broker took no session over')
  t.same(status.values, ['online'], 'no offline while the agent runs')
  t.equal(agent.logs.filter((l) => l.msg === 'connected').length, 1, 'the main connection was made once')
  t.equal(agent.logs.filter((l) => l.msg === 'disconnected').length, 0, 'and never lost')

  t.equal((await agent.stop()).code, 0)
  await status.waitFor('offline')
  t.pass('the watcher sees the offline of a clean stop')
})
