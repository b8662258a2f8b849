// The real agent against a broker that goes away at random moments (binding.md §2, §3): killed or stopped a few
// milliseconds after a gateway's Share=true detection, away for a random while, then back on the same port. After
// every return the device's retained `online` is back and the Associated Gateway alert queued just before reaches
// its DM Server, each within a liveness bound. Pins a reconnection that depended on luck: a backoff that kept
// growing while the broker was down, and queued work that waited for the next session timer after the return.
import t from 'tap'
import { CONFIG_DEFAULTS } from '../src/config.ts'
import { StatusWatcher } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startDmServer } from './peers/dm-server.ts'
import { ASSOCIATED_GATEWAY, startGateway } from './peers/gateway.ts'
import { gwAddressOf } from './fixtures/gwmo/observe.ts'
import { GATEWAY, gatewayOptions, SERVER_A, serverOptions, startGwmoAgent } from './fixtures/gwmo/parties.ts'

/** Broker restarts in one run: enough to land on the unlucky moments, within the file's CI time. */
const ROUNDS = 12
/**
 * How long after the broker is back the retained `online`, and then the alert, may take. Liveness bounds, not
 * performance figures (bench/ has those): generous enough for a loaded 2-core machine, short enough that a
 * return depending on a grown backoff or a session timer shows.
 */
const BACK_WITHIN_MS = 10_000
/**
 * How long after the broker is back the sessions the outage cut may take to be over (answered, or given up): a
 * liveness bound again, below the product's 30 s session timeout, which they must not have to wait for.
 */
const OVER_WITHIN_MS = 20_000

const DEVICE = 'mac:01-ab-34-ef-69-0c'

/** A small seeded generator (mulberry32): `GWMO_TEST_SEED` runs a failing run's choices again (kill or stop, delays). */
function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

t.test('after every broker restart at a random moment: online again, and the queued alert delivered', async (t) => {
  const seed = Number(process.env.GWMO_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31))
  t.comment(`seed ${seed} (GWMO_TEST_SEED=${seed} makes the same choices again)`)
  const random = seeded(seed)

  const broker = await startMosquitto()
  t.teardown(() => broker.stop())
  const server = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_A))
  t.teardown(() => server.stop())
  const gateway = await startGateway(gatewayOptions(broker.url, DEVICE, GATEWAY))
  t.teardown(() => gateway.stop())
  const status = await StatusWatcher.start(broker.url, DEVICE)
  t.teardown(() => status.stop())

  // The product's own session timers, not the tests' short ones: a return that waits for one of them shows.
  // Twelve detections in well under a minute: above the default rate a gateway is allowed (binding.md §11).
  const config = { session: CONFIG_DEFAULTS.session, limits: { detectionsPerMinute: 60 } }
  const agent = startGwmoAgent({ brokerUrl: broker.url, deviceId: DEVICE, parties: [SERVER_A, GATEWAY], config })
  t.teardown(async () => {
    if (!t.passing()) t.comment(`agent ${agent.pid ?? '?'} in ${agent.dir}:\n${agent.tail(120)}\n--- broker ---\n${broker.log().split('\n').slice(-40).join('\n')}`)
    await agent.remove()
  })
  // The factory bootstrap's first sessions, so that each round starts with nothing running.
  for (const peer of [server, gateway]) await peer.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)
  await status.waitFor('online')

  const alertFor = (address: string) =>
    server.sessions.flatMap((s) => s.genericAlerts).find((a) => a.type === ASSOCIATED_GATEWAY && gwAddressOf(a.data) === address)

  for (let round = 1; round <= ROUNDS; round++) {
    // A new address each round: the device does not queue an alert it already holds, and each round's is its own.
    const gwAddress = `2001:db8::${round.toString(16)}`
    const how = random() < 0.5 ? 'killed' : 'stopped'
    const delayMs = Math.floor(random() * 50)
    const downMs = 100 + Math.floor(random() * 3400)
    const what = `round ${round}: broker ${how} ${delayMs} ms after the detection was accepted, down ${downMs} ms`

    // The peers hear their topics again (they reconnect on their own after a restart): a detection whose answer
    // found the gateway still unsubscribed would wait for nobody.
    await Promise.all([server.listening(), gateway.listening()])
    const logsBefore = agent.logs.length
    const pushed = await gateway.sendDetection({ gwAddress, share: true })
    await agent.waitForLogAfter(logsBefore, (l) => l.msg === 'device detection accepted' && l.gwAddress === gwAddress, 15_000)
    await sleep(delayMs)
    const seenBefore = status.values.length
    if (how === 'killed') broker.kill()
    await broker.restart(() => sleep(downMs))
    const backAt = Date.now()

    // binding.md §2: the retained `online` again. The broker kept nothing across the restart (no persistence),
    // so an `online` seen now is one the device published after the return.
    await status.waitFor('online', seenBefore, BACK_WITHIN_MS).catch((error: Error) => t.fail(`${what}: ${error.message}`))
    const left = () => Math.max(1, backAt + BACK_WITHIN_MS - Date.now())
    t.equal(await StatusWatcher.retained(broker.url, DEVICE, left()), 'online', `${what}: the broker holds the retained online`)

    // binding.md §3: the alert queued before the outage goes out once the device is back, not at some later timer.
    const alert = await server.waitFor(() => alertFor(gwAddress), left(), `Associated Gateway ${gwAddress}`)
      .catch((error: Error) => void t.fail(`${what}: ${error.message}`))
    if (alert === undefined) break
    t.pass(`${what}: online again and the alert delivered`)

    // The sessions the outage cut (the detection's, and the one carrying the alert) are over soon too: what the
    // outage lost of them is sent again after the return, not at their session timeout. And the next detection
    // does not wait behind this one's.
    const over = (party: string, sessionId: string) => (l: { msg: string; party?: unknown; sessionId?: unknown }) =>
      (l.msg === 'session ended' || l.msg === 'session failed') && l.party === party && l.sessionId === sessionId
    const ended = await Promise.all([
      agent.waitForLogAfter(logsBefore, over(SERVER_A.serverId, alert.sessionId), Math.max(1, backAt + OVER_WITHIN_MS - Date.now()), `the end of session ${alert.sessionId}`),
      agent.waitForLogAfter(logsBefore, over(GATEWAY.serverId, pushed.sessionId), Math.max(1, backAt + OVER_WITHIN_MS - Date.now()), `the end of session ${pushed.sessionId}`),
    ]).catch((error: Error) => void t.fail(`${what}: ${error.message.split('\n')[0]}`))
    if (ended === undefined) break
    t.pass(`${what}: the sessions it cut are over`)
  }

  t.equal((await agent.stop()).code, 0, 'the agent stops cleanly after it all')
})
