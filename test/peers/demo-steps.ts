/**
 * The demo's story (binding.md §4, GwMO seeds 000 and 001), one step at a time. Each step does its part, prints
 * what went over the wire, checks what must (and must not) have happened, and resolves with a one-line summary;
 * it rejects with the reason when the step did not happen. Later steps build on earlier ones.
 */
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { buildAccountCommands, sendBootstrap } from './bootstrap-server.ts'
import { exec, get, replace } from './commands.ts'
import { describeLine, payloadSummary, statusesForGenericAlert, transcript } from './demo-report.ts'
import { anyHolds, type WireMessage } from './demo-wire.ts'
import { CAST, NAMES, type World } from './demo-world.ts'
import { ASSOCIATED_GATEWAY, BOOTSTRAPPED_DMS_LIST, LOCATION_UPDATE } from './gateway.ts'
import { topicFor } from './mqtt.ts'
import type { PartySession } from './session-record.ts'

export interface StepContext {
  world: World
  timeoutMs: number
}

export interface Step {
  title: string
  run(ctx: StepContext): Promise<string>
}

/**
 * How long step 3 listens after the DMS list for anything that must not happen (an Associated Gateway alert),
 * times the world's time scale: a slower agent would send it later.
 */
const QUIET_MS = 1000

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

function check(condition: unknown, reason: string): asserts condition {
  if (!condition) throw new Error(reason)
}

/**
 * Rejects as soon as the agent logs one of `messages` after `mark` (the device refused or dropped something),
 * so that a step fails with the device's own reason instead of a timeout; never settles otherwise.
 */
function refusal(w: World, mark: number, messages: string[], timeoutMs: number): Promise<never> {
  return w.agent
    .waitForLog((line) => messages.includes(line.msg) && w.agent.logs.indexOf(line) >= mark, timeoutMs, messages.join(' / '))
    .then(
      (line) => {
        const reason = typeof line.reason === 'string' ? `: ${line.reason}` : ''
        throw new Error(`the device logged "${line.msg}"${reason}`)
      },
      () => new Promise<never>(() => undefined),
    )
}

/**
 * Rejects once a session the gateway pushed after `from` has ended without a Bootstrapped DMS List: it kept
 * being refused (binding.md §6: a session may begin with one refusal, whose Chal the gateway answers).
 */
function gatewayGaveUp(w: World, from: number, timeoutMs: number): Promise<never> {
  const done = (s: PartySession) => w.gateway.sessions.indexOf(s) >= from && s.closed && !s.genericAlerts.some((a) => a.type === BOOTSTRAPPED_DMS_LIST)
  return w.gateway.waitForSession(done, timeoutMs).then(
    (s) => {
      throw new Error(`the device refused the gateway's credentials (Status ${s.hdrStatuses.join(', ')})`)
    },
    () => new Promise<never>(() => undefined),
  )
}

function race<T>(work: Promise<T>, ...failures: Promise<never>[]): Promise<T> {
  return Promise.race([work, ...failures])
}

function printTranscript(w: World, session: PartySession): void {
  for (const line of transcript(session, NAMES)) w.print(line)
}

function newSession(sessions: PartySession[], from: number, predicate: (s: PartySession) => boolean) {
  return (s: PartySession) => sessions.indexOf(s) >= from && predicate(s)
}

/** Where the device's messages went, by party: `gateway ×2, status ×1`. */
function recipients(messages: WireMessage[]): string {
  const counts = new Map<string, number>()
  for (const m of messages) {
    const levels = m.topic.split('/')
    const party = decodeURIComponent(levels[levels.length - 2] ?? '')
    const name = levels[levels.length - 1] === 'status' ? 'its status topic' : (NAMES.get(party) ?? party)
    counts.set(name, (counts.get(name) ?? 0) + 1)
  }
  return [...counts].map(([name, n]) => `${name} ×${n}`).join(', ') || 'none'
}

const factorySession: Step = {
  title: 'Factory bootstrap, then the first session with the DM Server (Alert 1201, DevInfo, syncml:auth-md5 both ways)',
  async run({ world: w, timeoutMs }) {
    await w.agent.waitForLog((l) => l.msg === 'started', timeoutMs, 'it started')
    w.print(`   factory bootstrap: ./DMAcc/${CAST.server.id} for ${CAST.server.serverId}, credentials both ways (AAuthType DIGEST)`)
    const session = await w.server.waitForSession((s) => s.origin === 'device' && (s.closed || s.deviceAuthFailures > 0), timeoutMs)
    printTranscript(w, session)
    check(session.deviceAuthenticated, "the DM Server refused the device's credentials (401)")
    check(session.initiation === '1201', `the session opened with Alert ${session.initiation ?? '(none)'}, not 1201`)
    check(session.devInfo['./DevInfo/DevId'] === CAST.deviceId, 'Package 1 did not report ./DevInfo/DevId')
    check(session.received[0]?.message.hdr.cred?.type === 'syncml:auth-md5', 'the device did not send syncml:auth-md5 credentials')
    check(session.partyAccepted, "the device did not accept the DM Server's credentials")
    return 'the device opened its first session and it and the DM Server authenticated each other (syncml:auth-md5)'
  },
}

const gatewayBootstrap: Step = {
  title: "Gateway bootstrap by the DM Server in that first session (seed 001, 8.4.1)",
  async run({ world: w }) {
    const session = w.server.sessions.find((s) => s.origin === 'device')
    check(session, 'no first session')
    const gw = CAST.gateway
    w.print(`   the DM Server's Adds: ./DMAcc/${gw.id} with ServerID=${gw.serverId}, Ext/GwMO/Role=gateway,`)
    w.print(`   CLCRED ${gw.clientName} (device → gateway), SRVCRED ${gw.serverName} (gateway → device), AAuthType DIGEST`)
    const adds = session.statuses.filter((s) => s.cmd === 'Add')
    check(adds.length > 0, 'the device answered none of the Adds')
    const refused = adds.filter((s) => s.code !== '200')
    check(refused.length === 0, `the device refused the gateway's account: ${refused.map((s) => `Status ${s.code} for ${s.target ?? s.cmdRef}`).slice(0, 3).join(', ')}`)
    return `the device stored ./DMAcc/${gw.id} (${adds.length} Adds, Status 200 each): it now knows the gateway`
  },
}

async function detection(w: World, share: boolean, timeoutMs: number): Promise<{ servers: string[]; session: PartySession }> {
  const from = w.gateway.sessions.length
  const logMark = w.agent.logs.length
  const servers = await race(
    w.gateway.detect({ gwAddress: CAST.gwAddress, share, timeoutMs }),
    refusal(w, logMark, ['device detection refused: bad payload'], timeoutMs),
    gatewayGaveUp(w, from, timeoutMs),
  )
  const session = w.gateway.sessions.slice(from).find((s) => s.genericAlerts.some((a) => a.type === BOOTSTRAPPED_DMS_LIST))
  check(session, 'no gateway session holds the Bootstrapped DMS List')
  await w.gateway.waitForSession((s) => s === session && s.closed, timeoutMs).catch(() => undefined)
  printTranscript(w, session)
  check(
    servers.length === 1 && servers[0] === CAST.server.serverId,
    `the Bootstrapped DMS List is [${servers.join(', ')}], not [${CAST.server.serverId}]`,
  )
  return { servers, session }
}

/**
 * Waits until the watcher has seen every message the peers received from the device: a broker may deliver the
 * device's last message of a session to its party before it delivers it to the watcher.
 */
async function wireCaughtUp(w: World, timeoutMs: number): Promise<void> {
  // DM Server 2 is reached over HTTP (binding.md §10): its messages never cross the broker.
  const peers = [w.server, w.gateway]
  const receivedByPeers = () => peers.flatMap((p) => p.sessions).reduce((n, s) => n + s.received.length + s.duplicates, 0)
  const seenFromDevice = () => w.wire.fromDevice(0).filter((m) => !m.topic.endsWith('/status')).length
  await w.wire.until(() => seenFromDevice() >= receivedByPeers(), timeoutMs, "the device's messages so far")
}

const detectionNoShare: Step = {
  title: 'Device Detection Alert from the gateway with Share = false (seed 000, 8.6.1.2)',
  async run({ world: w, timeoutMs }) {
    await wireCaughtUp(w, timeoutMs)
    const wireMark = w.wire.mark()
    const logMark = w.agent.logs.length
    const serverSessions = w.server.sessions.length
    const { servers } = await detection(w, false, timeoutMs)
    await sleep(QUIET_MS * w.timeScale)
    const fromDevice = w.wire.fromDevice(wireMark)
    const alerts = w.server.sessions.slice(serverSessions).flatMap((s) => s.genericAlerts)
    check(!alerts.some((a) => a.type === ASSOCIATED_GATEWAY), 'an Associated Gateway alert reached the DM Server')
    check(!anyHolds(fromDevice, 'AssociatedGateway'), 'the device sent an Associated Gateway alert')
    check(!anyHolds(fromDevice, CAST.gwAddress), `a message from the device holds the gateway's address ${CAST.gwAddress}`)
    const logged = w.agent.logs.slice(logMark).some((l) => JSON.stringify(l).includes(CAST.gwAddress))
    check(!logged, `the agent logged the gateway's address ${CAST.gwAddress}`)
    w.print(`   watching every topic: the device published ${fromDevice.length} message(s) (${recipients(fromDevice)});`)
    w.print(`   none holds ${CAST.gwAddress} or an Associated Gateway alert, and no DM Server session followed`)
    return `Bootstrapped DMS List [${servers.join(', ')}] back to the gateway; the gateway's address never left the device`
  },
}

const detectionShare: Step = {
  title: 'Device Detection Alert with Share = true, then Associated Gateway to the DM Server (seed 000, 8.6.1.3)',
  async run({ world: w, timeoutMs }) {
    const from = w.server.sessions.length
    const { servers } = await detection(w, true, timeoutMs)
    const session = await w.server.waitForSession(
      newSession(w.server.sessions, from, (s) => s.closed && s.genericAlerts.some((a) => a.type === ASSOCIATED_GATEWAY)),
      timeoutMs,
    )
    printTranscript(w, session)
    const alert = session.genericAlerts.find((a) => a.type === ASSOCIATED_GATEWAY)!
    check(alert.data.includes(`<GwAddress>${CAST.gwAddress}</GwAddress>`), `the alert says ${payloadSummary(alert.data)}`)
    const codes = statusesForGenericAlert(session, ASSOCIATED_GATEWAY)
    check(
      codes.length > 0 && codes.every((c) => c.startsWith('2')),
      `the DM Server answered ${codes.join(', ') || 'nothing'} to the Associated Gateway alert: not acknowledged, so the device keeps it queued`,
    )
    return `DMS List [${servers.join(', ')}] again, and the DM Server learnt ${payloadSummary(alert.data)} in session ${session.sessionId}`
  },
}

const transparentNotification: Step = {
  title: 'DM Notification from the DM Server, forwarded by the gateway (transparent mode)',
  async run({ world: w, timeoutMs }) {
    const sessionId = 0x1000 + Math.floor(Math.random() * 0xe000)
    const hex = sessionId.toString(16).toUpperCase()
    w.server.script((s) => (s.initiation === '1200' ? [get('./DevInfo/Mod')] : undefined))
    const via = topicFor(CAST.gateway.serverId, 'notification')
    const wireMark = w.wire.mark()
    const logMark = w.agent.logs.length
    // The planted fault of step 5: a notification whose digest was made with the wrong password.
    const bytes = await w.server.sendNotification({ sessionId, via, ...(w.breakStep === 5 && { password: 'forged' }) })
    w.print(describeLine('DM Server', 'gateway', [`DM Notification (Package 0): session ${hex}, ${bytes.length} bytes, digest with the server's credentials`]))
    const relayed = await w.wire.next(via, wireMark, timeoutMs)
    await w.gateway.forwardNotification(relayed.payload)
    w.print(describeLine('gateway', 'device', [`the same ${relayed.payload.length} bytes, unchanged, on the device's notification topic`]))
    const session = await race(
      w.server.waitForSession((s) => s.sessionId === hex && s.closed, timeoutMs),
      refusal(w, logMark, ['notification dropped'], timeoutMs),
    )
    printTranscript(w, session)
    check(session.initiation === '1200', `the session opened with Alert ${session.initiation ?? '(none)'}, not 1200`)
    check(session.deviceAuthenticated, "the DM Server refused the device's credentials")
    return `the device verified the digest and opened session ${hex} with the DM Server (Alert 1200)`
  },
}

const locationUpdate: Step = {
  title: 'Location change, then a Location Update Generic Alert to the DM Server (seed 001, 8.4.1)',
  async run({ world: w, timeoutMs }) {
    const from = w.server.sessions.length
    const logMark = w.agent.logs.length
    const before = CAST.locationBefore
    const after = CAST.locationAfter
    // Written whole and renamed into place, so the agent never reads half a file. The planted fault of step 6
    // is a file the agent cannot read.
    const text = w.breakStep === 6 ? '{ "addresses": [' : JSON.stringify(after) + '\n'
    writeFileSync(`${w.locationFile}.new`, text)
    renameSync(`${w.locationFile}.new`, w.locationFile)
    w.print(`   location file rewritten: address ${before.addresses.join(', ')} → ${after.addresses.join(', ')}, default gateway ${after.defaultGateway}`)
    const session = await race(
      w.server.waitForSession(
        newSession(w.server.sessions, from, (s) => s.closed && s.genericAlerts.some((a) => a.type === LOCATION_UPDATE)),
        timeoutMs,
      ),
      refusal(w, logMark, ['network location unavailable'], timeoutMs),
    )
    printTranscript(w, session)
    const alert = session.genericAlerts.find((a) => a.type === LOCATION_UPDATE)!
    check(alert.data.includes(`<DevAddress>${after.addresses[0]}</DevAddress>`), `the update says ${payloadSummary(alert.data)}`)
    return `the DM Server learnt the new location: ${payloadSummary(alert.data)}`
  },
}

const localBootstrap: Step = {
  title: 'Local DM Bootstrap Server: WBXML bootstrap with SEC/MAC adding a second DM Server, reached over HTTP (seed 001, 8.4.2; binding.md §10)',
  async run({ world: w, timeoutMs }) {
    const logMark = w.agent.logs.length
    // A command for the first session, so that the device answers and shows it accepted the server's credentials.
    w.server2.script(() => [get(`./DMAcc/${CAST.server2.id}/ServerID`)])
    const sent = await sendBootstrap({
      brokerUrl: w.brokerUrl,
      deviceId: CAST.deviceId,
      // Its account says Ext/GwmoAgent/Binding = http: the device POSTs to the server's URL, beside the first server's MQTT.
      commands: buildAccountCommands({ ...CAST.server2, addr: w.server2.url }),
      encoding: 'wbxml',
      sec: 'NETWORKID',
      networkId: CAST.networkId,
      // The planted fault of step 7: a MAC that does not verify.
      ...(w.breakStep === 7 && { macOverride: '0'.repeat(40) }),
    })
    w.print(describeLine('bootstrap server', 'device', [
      `WBXML ${sent.payload.length} bytes, SEC=NETWORKID, MAC=${sent.mac.slice(0, 12)}…`,
      `Add ./DMAcc/${CAST.server2.id} for ${CAST.server2.serverId}, Binding http, Addr ${w.server2.url}`,
    ]))
    const session = await race(
      w.server2.waitForSession((s) => s.origin === 'device' && (s.closed || s.deviceAuthFailures > 0), timeoutMs),
      refusal(w, logMark, ['bootstrap refused'], timeoutMs),
    )
    printTranscript(w, session)
    check(session.initiation === '1201', `the session opened with Alert ${session.initiation ?? '(none)'}, not 1201`)
    check(session.deviceAuthenticated && session.partyAccepted, 'the device and DM Server 2 did not authenticate each other')
    const posts = w.server2.requests.length
    check(posts === session.received.length && w.server2.overBroker.length === 0, 'the session with DM Server 2 did not go over HTTP alone')
    return `the MAC verified, the account was applied, and the device opened a session with ${CAST.server2.serverId} (Alert 1201) over HTTP, ${posts} POSTs`
  },
}

const deviceObjects: Step = {
  title: "The device's own objects: CPU temperature and uptime read, a setting written, an Exec run (binding.md §8)",
  async run({ world: w, timeoutMs }) {
    const o = CAST.objects
    const before = statSync(w.objectFiles.setting).ino
    w.print(`   objects on files the demo provides: ${o.cpuTemp.uri} reads ${o.cpuTemp.file} (as /sys/class/thermal/thermal_zone0/temp),`)
    w.print(`   ${o.uptime.uri} runs cut on ${o.uptime.file} (as /proc/uptime), ${o.setting.uri} writes ${o.setting.file}, ${o.exec.uri} runs a program`)
    const from = w.server.sessions.length
    const pushed = await w.server.pushSession([
      get(o.cpuTemp.uri), get(o.uptime.uri), replace(o.setting.uri, o.setting.value, 'int'), exec(o.exec.uri, undefined, o.exec.correlator),
    ])
    const session = await w.server.waitForSession((s) => s === pushed && s.closed, timeoutMs)
    printTranscript(w, session)
    const result = (uri: string) => session.results.flatMap((r) => r.items).find((i) => i.source === uri)?.data
    const status = (uri: string) => session.statuses.filter((s) => s.target === uri).at(-1)?.code
    check(result(o.cpuTemp.uri) === o.cpuTemp.value, `${o.cpuTemp.uri} read ${result(o.cpuTemp.uri) ?? 'nothing'} (Status ${status(o.cpuTemp.uri) ?? '-'})`)
    check(result(o.uptime.uri) === o.uptime.value, `${o.uptime.uri} read ${result(o.uptime.uri) ?? 'nothing'} (Status ${status(o.uptime.uri) ?? '-'})`)
    check(status(o.setting.uri) === '200', `the Replace of ${o.setting.uri} was answered ${status(o.setting.uri) ?? 'nothing'}`)
    const written = readFileSync(w.objectFiles.setting, 'utf8')
    check(written === o.setting.value, `${o.setting.file} holds ${JSON.stringify(written)}, not ${o.setting.value}`)
    // Written beside and renamed into place: a new file, so no reader ever saw half a value.
    check(statSync(w.objectFiles.setting).ino !== before, `${o.setting.file} was written in place, not replaced atomically`)
    w.print(`   ${o.setting.file}: ${o.setting.content.trim()} → ${written} (a new file renamed over the old one: written atomically)`)
    check(status(o.exec.uri) === '202', `the Exec was answered ${status(o.exec.uri) ?? 'nothing'}, not 202 (accepted, result to follow)`)
    const alerted = await w.server.waitForSession(
      newSession(w.server.sessions, from, (s) => s.closed && s.genericAlerts.some((a) => a.correlator === o.exec.correlator)),
      timeoutMs,
    )
    printTranscript(w, alerted)
    const alert = alerted.genericAlerts.find((a) => a.correlator === o.exec.correlator)!
    w.print(`   the result alert: Correlator ${alert.correlator}, Source ${alert.source ?? '-'}, Meta/Type ${alert.type}, Data ${alert.data}`)
    check(alert.source === o.exec.uri && alert.type === o.exec.alertType, `the result alert names ${alert.source ?? 'no node'} and ${alert.type}`)
    check(alert.data === '200', `the program's result is ${alert.data}, not 200 (exit 0)`)
    return `CPU ${Number(o.cpuTemp.value) / 1000} °C, up ${o.uptime.value} s, ${o.setting.file} = ${written}, and the Exec's 202 followed by its result 200 (Correlator ${alert.correlator})`
  },
}

const fumoUpdate: Step = {
  title: 'Firmware update over FUMO: PkgURL set, DownloadAndUpdate executed, the package downloaded, checked and installed by the update module, the result reported (binding.md §9)',
  async run({ world: w, timeoutMs }) {
    const f = CAST.fumo
    const sha256 = createHash('sha256').update(f.package).digest('hex')
    w.print(`   the package: ${Buffer.byteLength(f.package)} bytes at ${w.fumo.packageUrl}, SHA-256 ${sha256.slice(0, 16)}…; the update module only records its calls`)
    const from = w.server.sessions.length
    const node = `${f.uri}/DownloadAndUpdate`
    const pushed = await w.server.pushSession([
      replace(`${node}/PkgURL`, w.fumo.packageUrl), replace(`${f.uri}/Ext/PkgSHA256`, sha256), exec(node, undefined, f.correlator),
    ])
    const session = await w.server.waitForSession((s) => s === pushed && s.closed, timeoutMs)
    printTranscript(w, session)
    const execStatus = session.statuses.filter((s) => s.target === node).at(-1)?.code
    check(execStatus === '202', `the Exec of ${node} was answered ${execStatus ?? 'nothing'}, not 202`)
    const alerted = await w.server.waitForSession(
      newSession(w.server.sessions, from, (s) => s.closed && s.genericAlerts.some((a) => a.correlator === f.correlator)),
      timeoutMs,
    )
    printTranscript(w, alerted)
    const alert = alerted.genericAlerts.find((a) => a.correlator === f.correlator)!
    w.print(`   the result alert: Correlator ${alert.correlator}, Source ${alert.source ?? '-'}, Meta/Type ${alert.type}, Data ${alert.data}`)
    const calls = existsSync(w.fumo.calls) ? readFileSync(w.fumo.calls, 'utf8').trim().split('\n') : []
    w.print(`   the update module was called: ${calls.map((c) => c.split(' ')[0]).join(', ') || 'never'}`)
    check(alert.data === '200', `the update's result is ${alert.data}, not 200`)
    check(calls.join('|') === `check ${sha256}|install ${sha256}`, `the module was called ${JSON.stringify(calls)}`)
    return `the device installed the package the DM Server named (check, install) and reported 200 in ${alert.type.split('.').at(-1)} (Correlator ${alert.correlator})`
  },
}

export const STEPS: readonly Step[] = [
  factorySession,
  gatewayBootstrap,
  detectionNoShare,
  detectionShare,
  transparentNotification,
  locationUpdate,
  localBootstrap,
  deviceObjects,
  fumoUpdate,
]
