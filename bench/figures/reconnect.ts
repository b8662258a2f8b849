/**
 * Broker restart → back: the agent, its two parties (the test peers) and the floor client on a mosquitto of their
 * own. Each run, the gateway pushes a Share=true Device Detection Alert; within `KILL_WITHIN_MS` after the
 * device's answer reaches it, the broker is killed, and started again on the same port `DOWN_MS` later (as in
 * the review's finding: "killed 0–50 ms after a Share=true detection and started again 2 s later"). From the
 * broker's start (mosquitto's own start included) until the device's retained `online` reaches a bench client
 * (the floor's too, alongside), and, in the restarts where it had not reached the DM Server peer before the
 * kill, until the peer has the Associated Gateway alert the device queued. The peers reconnect every second
 * (test/peers/mqtt.ts), so the alert figure holds their return as well as the device's.
 */
import mqtt from 'mqtt'
import { startMosquitto } from '../../test/helpers/mosquitto.ts'
import { gatewayOptions, serverOptions } from '../../test/fixtures/gwmo/parties.ts'
import { gwAddressOf } from '../../test/fixtures/gwmo/observe.ts'
import { startDmServer } from '../../test/peers/dm-server.ts'
import { ASSOCIATED_GATEWAY, BOOTSTRAPPED_DMS_LIST, startGateway } from '../../test/peers/gateway.ts'
import { agentSetup, BENCH_PARTIES } from '../lib/agent-setup.ts'
import { run, sleep } from '../lib/processes.ts'
import { repeat, summarize, type Summary } from '../lib/stats.ts'

export interface ReconnectFigures {
  onlineMs: Summary
  floorOnlineMs: Summary
  /** Over the restarts in which the alert had not reached the server before the kill. */
  alertMs: Summary
  /** Restarts measured, and how many of them had the alert still on its way at the kill. */
  restarts: number
  outstanding: number
}

/** How long the broker stays away each run. */
export const DOWN_MS = 2000
/** The kill comes at a random moment within this long after the device's answer reaches the gateway. */
export const KILL_WITHIN_MS = 10
/** After each run, for the sessions the restart cut to end before the next detection (the agent resends after 3 s). */
const SETTLE_MS = 5000

/** A client that sees the retained statuses: back within ~20 ms of the broker, subscribing again each time. */
async function statusClient(url: string, topics: string[]) {
  const client = mqtt.connect(url, { protocolVersion: 5, clientId: `bench-status-${process.pid}`, reconnectPeriod: 20, connectTimeout: 2000 })
  const arrivals = new Map<string, number[]>()
  client.on('connect', () => client.subscribe(topics, { qos: 1 }))
  client.on('message', (topic, payload) => {
    if (payload.toString() === 'online') arrivals.set(topic, [...(arrivals.get(topic) ?? []), performance.now()])
  })
  client.on('error', () => {})
  await new Promise((resolve) => client.once('connect', resolve))
  return {
    /** The first `online` on `topic` that arrived after `since`. */
    async after(topic: string, since: number, timeoutMs: number): Promise<number> {
      const deadline = performance.now() + timeoutMs
      for (;;) {
        const at = arrivals.get(topic)?.find((t) => t > since)
        if (at !== undefined) return at
        if (performance.now() > deadline) throw new Error(`no online on ${topic} within ${timeoutMs} ms of the broker's start`)
        await sleep(5)
      }
    },
    stop: () => client.endAsync(true),
  }
}

export async function measureReconnect(agentBundle: string, floorBundle: string, options: { runs: number; warmup: number }): Promise<ReconnectFigures> {
  const broker = await startMosquitto({ open: true })
  const setup = agentSetup(broker.url, 'mac:02-be-00-00-00-30', { location: { enabled: false } })
  const server = await startDmServer(serverOptions(broker.url, setup.deviceId, BENCH_PARTIES.server))
  const gateway = await startGateway(gatewayOptions(broker.url, setup.deviceId, BENCH_PARTIES.gateway))
  const floorStatus = 'floor/restart/status'
  const status = await statusClient(broker.url, [setup.statusTopic, floorStatus])
  const agent = run(process.execPath, [agentBundle, '--config', setup.configPath])
  const floor = run(process.execPath, [floorBundle, broker.url, 'restart'])
  const online: number[] = []
  const floorOnline: number[] = []
  try {
    for (const party of [server, gateway]) await party.waitForSession((s) => s.origin === 'device' && s.closed, 60_000)
    await Promise.all([status.after(setup.statusTopic, 0, 30_000), status.after(floorStatus, 0, 30_000)])
    let round = 0
    const alerts: number[] = []
    await repeat(options.runs, options.warmup, async (k) => {
      const gwAddress = `2001:db8::b:${(++round).toString(16)}`
      await Promise.all([server.listening(), gateway.listening()])
      const pushed = await gateway.sendDetection({ gwAddress, share: true })
      const alertAt = server.waitFor(() => server.sessions.flatMap((s) => s.genericAlerts).some((a) => a.type === ASSOCIATED_GATEWAY && gwAddressOf(a.data) === gwAddress) || undefined, 60_000, 'Associated Gateway')
        .then(() => performance.now())
      await gateway.waitFor(() => pushed.genericAlerts.some((a) => a.type === BOOTSTRAPPED_DMS_LIST) || undefined, 15_000, 'the device\'s answer')
      // The device queues the alert and opens the session for it a few milliseconds after its answer has left
      // (the queue is made durable first): a kill this soon mostly finds it still on its way.
      await sleep(Math.random() * KILL_WITHIN_MS)
      const killedAt = performance.now()
      broker.kill()
      // From the moment the broker is started again: a client may well be back before the port answers the helper.
      let backAt = 0
      await broker.restart(async () => {
        await sleep(DOWN_MS)
        backAt = performance.now()
      })
      const [device, floorAt, alerted] = await Promise.all([
        status.after(setup.statusTopic, killedAt, 30_000),
        status.after(floorStatus, killedAt, 30_000),
        alertAt,
      ])
      if (k >= 0) {
        online.push(device - backAt)
        floorOnline.push(floorAt - backAt)
        // An alert that reached the peer as the broker went down was not waiting for its return.
        if (alerted > backAt) alerts.push(alerted - backAt)
      }
      await sleep(SETTLE_MS)
      return 0
    })
    return { onlineMs: summarize(online), floorOnlineMs: summarize(floorOnline), alertMs: summarize(alerts), restarts: online.length, outstanding: alerts.length }
  } finally {
    await Promise.all([agent.stop(), floor.stop()])
    await status.stop()
    await Promise.all([server.stop(), gateway.stop()])
    await broker.stop()
  }
}
