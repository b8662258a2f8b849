// The real agent across broker restarts (binding.md §2, §3): it reconnects, publishes its retained `online`
// again, finishes (or retries) the session the restart cut, and a Generic Alert it had queued is neither lost
// nor delivered again once the server acknowledged it, even when the agent itself is killed meanwhile.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { AgentProcess, cleanUpAgent, FACTORY, factoryServer, StatusWatcher, type TeardownHost } from './helpers/agent-process.ts'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.ts'
import { startDmServer, type DmServer } from './peers/dm-server.ts'
import { LOCATION_UPDATE } from './peers/gateway.ts'
import { topicFor, usernameOf } from './peers/mqtt.ts'
import { parseMessage, type ParsedMessage } from './peers/syncml.ts'

const HOME = { addresses: ['192.0.2.7'], defaultGateway: '192.0.2.1' }
const AWAY = { addresses: ['198.51.100.23'], defaultGateway: '198.51.100.1' }

/** A plain subscriber on the server's topic: sees what the device sends while no server answers. */
async function overhear(t: TeardownHost, brokerUrl: string): Promise<ParsedMessage[]> {
  const heard: ParsedMessage[] = []
  // In the server's place on the broker, the only one its ACL lets read the server's topic.
  const client = mqtt.connect(brokerUrl, { protocolVersion: 5, clientId: `overhear-${process.pid}`, username: usernameOf(FACTORY.serverId), reconnectPeriod: 0 })
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', reject)
  })
  client.on('message', (_topic, payload) => {
    const parsed = parseMessage(payload.toString('utf8'))
    if (parsed.ok) heard.push(parsed.message)
  })
  await new Promise<void>((resolve, reject) =>
    client.subscribe(topicFor(FACTORY.serverId, 'dm'), { qos: 1 }, (error) => (error ? reject(error) : resolve())))
  t.teardown(() => new Promise<void>((resolve) => client.end(true, {}, () => resolve())))
  return heard
}

async function until<T>(probe: () => T | undefined, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

function locationAgent(t: TeardownHost, broker: Mosquitto): { agent: AgentProcess; locationFile: string } {
  const agent = cleanUpAgent(t, AgentProcess.start({
    brokerUrl: broker.url,
    // The location file lives beside the configuration; the agent reads it at every poll.
    config: { location: { enabled: true, pollSeconds: 1, sourceFile: 'location.json' } },
    ...prepareLocation(),
  }))
  return { agent, locationFile: join(agent.dir, 'location.json') }
}

/** Writes the first location into a fresh directory before the agent starts there. */
function prepareLocation(): { dir: string } {
  const dir = AgentProcess.makeDir()
  writeFileSync(join(dir, 'location.json'), JSON.stringify(HOME))
  return { dir }
}

function hasLocationUpdate(message: ParsedMessage): boolean {
  return message.commands.some((c) => c.name === 'Alert' && c.data === '1226' && c.items.some((i) => i.meta.type === LOCATION_UPDATE))
}

t.test('a broker restart in the middle of a session: reconnect, online again, the queued alert delivered once', async (t) => {
  const broker = await startMosquitto()
  t.teardown(() => broker.stop())
  let server: DmServer = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const status = await StatusWatcher.start(broker.url)
  t.teardown(() => status.stop())

  const { agent, locationFile } = locationAgent(t, broker)
  await server.waitForSession((s) => s.closed, 20_000)
  await agent.waitForLog((l) => l.msg === 'network location recorded')
  const nonces = { serverNonce: server.serverNonce, clientNonce: server.clientNonce }

  // The server goes quiet: the device's next Package 1 gets no Package 2.
  await server.stop()
  const heard = await overhear(t, broker.url)
  writeFileSync(locationFile, JSON.stringify(AWAY))
  await agent.waitForLog((l) => l.msg === 'network location changed')
  const p1 = await until(() => heard.find(hasLocationUpdate), 'Package 1 with the Location Update')
  t.equal(p1.commands[0]?.data, '1201', 'a session the device opened to report its move')

  // Mid-session, the broker goes away and comes back on the same port.
  const onlineBefore = status.values.length
  const logsBefore = agent.logs.length
  await broker.restart(async () => {
    await agent.waitForLogAfter(logsBefore, (l) => l.msg === 'disconnected', 15_000, '"disconnected"')
  })
  server = await startDmServer({ ...factoryServer(broker.url, t), ...nonces })
  await agent.online(30_000, logsBefore)
  await status.waitFor('online', onlineBefore, 30_000)
  t.pass('the agent reconnected and published online again')
  t.equal(await StatusWatcher.retained(broker.url), 'online', 'the new broker holds the retained online')

  // The session that was cut is answered when the device sends again, or a new session carries the alert.
  const alert = await server.waitForGenericAlert(LOCATION_UPDATE, 40_000)
  t.match(alert.data, /<DevAddress>198\.51\.100\.23<\/DevAddress>/, 'the alert reports the new address')
  t.notMatch(alert.data, /192\.0\.2\.7/, 'and not the old one')
  const delivered = server.sessions.find((s) => s.genericAlerts.includes(alert))!
  await server.waitForSession((s) => s === delivered && s.closed, 20_000)
  await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === delivered.sessionId && l.outcome === 'completed', 20_000)

  // Acknowledged (200): the next session carries no Location Update.
  await server.sendNotification({ sessionId: 0x77 })
  const next = await server.waitForSession((s) => s.sessionId === '77' && s.closed, 20_000)
  t.notOk(next.received.some((m) => hasLocationUpdate(m.message)), 'an acknowledged alert is not sent again')
  t.equal(server.sessions.flatMap((s) => s.genericAlerts).filter((a) => a.type === LOCATION_UPDATE).length, 1,
    'the server got it once')
  t.equal((await agent.stop()).code, 0)
})

t.test('an alert queued while the broker is down survives a SIGKILL and is delivered after the restart', async (t) => {
  const broker = await startMosquitto()
  t.teardown(() => broker.stop())
  let server: DmServer = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())

  const { agent, locationFile } = locationAgent(t, broker)
  await server.waitForSession((s) => s.closed, 20_000)
  await agent.waitForLog((l) => l.msg === 'network location recorded')
  const nonces = { serverNonce: server.serverNonce, clientNonce: server.clientNonce }
  await server.stop()

  // The broker is down while the device moves: the alert is queued (persisted), the session cannot start.
  const logsBefore = agent.logs.length
  let again: AgentProcess | undefined
  await broker.restart(async () => {
    await agent.waitForLogAfter(logsBefore, (l) => l.msg === 'disconnected', 15_000, '"disconnected"')
    writeFileSync(locationFile, JSON.stringify(AWAY))
    await agent.waitForLogAfter(logsBefore, (l) => l.msg === 'network location changed', 15_000)
    await agent.waitForLogAfter(logsBefore, (l) => l.msg === 'session started' && l.initiator === 'device', 15_000)
    // No goodbye, no flush: only what was durable survives.
    await agent.kill()
    again = cleanUpAgent(t, agent.restart())
    await again.ready()
  })
  server = await startDmServer({ ...factoryServer(broker.url, t), ...nonces })
  const alert = await server.waitForGenericAlert(LOCATION_UPDATE, 40_000)
  t.match(alert.data, /198\.51\.100\.23/, 'the alert queued before the kill is delivered')
  t.equal(alert.source, FACTORY.deviceId)
  t.equal(alert.target, FACTORY.serverId)
  const delivered = server.sessions.find((s) => s.genericAlerts.includes(alert))!
  await again!.waitForLog((l) => l.msg === 'session ended' && l.sessionId === delivered.sessionId && l.outcome === 'completed', 20_000)
  t.equal((await again!.stop()).code, 0)

  // And it stays delivered across one more start: nothing pending, no session opened for it.
  const before = server.sessions.length
  const third = cleanUpAgent(t, again!.restart())
  await third.online()
  await server.sendNotification({ sessionId: 0x78 })
  const next = await server.waitForSession((s) => s.sessionId === '78' && s.closed, 20_000)
  t.notOk(next.received.some((m) => hasLocationUpdate(m.message)), 'not sent again after a restart')
  t.notOk(server.sessions.slice(before).some((s) => s.initiation === '1201'), 'no session opened for an acknowledged alert')
  t.equal((await third.stop()).code, 0)
})
