/**
 * Everything the demo runs: a broker (embedded, or the one `--broker` names), the watcher of every topic, the
 * DM Server (over MQTT), the DM Gateway and a second DM Server (over HTTP) as scripted peers, and the real bundled agent as a child
 * process on a temporary directory (its configuration, factory bootstrap, state and location file).
 *
 * `breakStep` plants one fault so that the demo can show (and its test can check) a step that does not happen.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildAccountCommands, type AccountSpec } from './bootstrap-server.ts'
import { AgentChild, STOP_GRACE_MS, type AgentLogLine } from './demo-agent.ts'
import type { Names } from './demo-report.ts'
import { WireWatch } from './demo-wire.ts'
import { startDmServer, type DmServer } from './dm-server.ts'
import { startEmbeddedBroker, type EmbeddedBroker } from './embedded-broker.ts'
import { ASSOCIATED_GATEWAY, startGateway, type Gateway } from './gateway.ts'
import { DEFAULT_PREFIX } from './mqtt.ts'
import type { TrafficEvent } from './party.ts'
import { buildMessage } from './syncml.ts'

/** The device, its parties and their credentials: the demo's whole cast. */
/** A party as the device's account describes it (the demo's peers use the same credentials). */
const party = (spec: AccountSpec): Readonly<AccountSpec> => Object.freeze(spec)

export const CAST = Object.freeze({
  deviceId: 'mac:01-ab-34-ef-69-0c',
  /** The factory-bootstrapped DM Server (its account `./DMAcc/dms`). */
  server: party({
    id: 'dms', serverId: 'http://dms.example.com', addr: 'http://dms.example.com',
    clientName: 'device-user', clientPassword: 'device-secret', serverName: 'dms-user', serverPassword: 'dms-secret',
  }),
  /** The DM Gateway, whose account the DM Server adds in the first session (`./DMAcc/gw`). */
  gateway: party({
    id: 'gw', serverId: 'http://gw.example.net', addr: 'http://gw.example.net', role: 'gateway',
    clientName: 'device-at-gw', clientPassword: 'gw-client-secret', serverName: 'gw-user', serverPassword: 'gw-secret',
  }),
  /**
   * The DM Server a local DM Bootstrap Server adds (`./DMAcc/dms2`), reached over HTTP (binding.md §10): its Addr is
   * the URL of the peer's own HTTP server, known once it listens.
   */
  server2: party({
    id: 'dms2', serverId: 'http://dms2.example.org', addr: 'http://dms2.example.org', agent: { Binding: 'http' },
    clientName: 'device-at-dms2', clientPassword: 'dms2-client-secret', serverName: 'dms2-user', serverPassword: 'dms2-secret',
  }),
  /** The bootstrap secret for SEC NETWORKID (OMA DM Security 1.2, 5.1.7.2). */
  networkId: 'demo-network-secret',
  /** What the gateway tells the device about itself (GwMO Device Detection Alert). */
  gwAddress: '192.168.1.254',
  locationBefore: { addresses: ['192.168.1.23'], defaultGateway: '192.168.1.1' },
  locationAfter: { addresses: ['192.168.1.57'], defaultGateway: '192.168.1.1' },
  /**
   * The device's own objects (binding.md §8), on files the demo provides in its folder (a machine running the demo
   * need not have /sys/class/thermal): what each file starts with, and the setting the DM Server writes.
   */
  objects: Object.freeze({
    cpuTemp: { uri: './Vendor/Demo/CpuTemp', file: 'thermal_zone0_temp', content: '47312\n', value: '47312' },
    uptime: { uri: './Vendor/Demo/Uptime', file: 'uptime', content: '3600.25 7100.50\n', value: '3600.25' },
    setting: { uri: './Vendor/Demo/Config/ReportEvery', file: 'report-every', content: '60\n', value: '300' },
    exec: { uri: './Vendor/Demo/Ops/RestartApp', correlator: 'demo-restart-1', alertType: 'urn:x-gwmo-agent:exec:1.0:result' },
  }),
  /** FUMO (binding.md §9): the package the DM Server has the device install, and the update module's record of it. */
  fumo: Object.freeze({ uri: './FUMO/1', package: 'demo firmware 2.0\n', correlator: 'demo-fumo-1', module: 'fumo-module', calls: 'fumo-calls' }),
})

export const NAMES: Names = new Map([
  [CAST.deviceId, 'device'],
  [CAST.server.serverId, 'DM Server'],
  [CAST.gateway.serverId, 'gateway'],
  [CAST.server2.serverId, 'DM Server 2'],
])

export interface WorldOptions {
  /** An external broker; an embedded one when absent. */
  brokerUrl?: string
  agentBundle: string
  agentRuntime?: string
  verbose: boolean
  /** How many times slower the agent's runtime is than this machine (1: as fast). */
  timeScale: number
  breakStep?: number
  print: (line: string) => void
}

export interface World {
  brokerUrl: string
  /** The files behind the device's own objects (`CAST.objects`), in the demo's folder. */
  objectFiles: { cpuTemp: string; uptime: string; setting: string }
  /** Where the demo's HTTP server offers the FUMO package, and the file the update module records its calls in. */
  fumo: { packageUrl: string; calls: string }
  embedded: boolean
  dir: string
  locationFile: string
  server: DmServer
  gateway: Gateway
  server2: DmServer
  agent: AgentChild
  wire: WireWatch
  timeScale: number
  breakStep?: number
  print: (line: string) => void
  /** Stops the agent (SIGTERM), the peers and the broker, and removes the temporary directory. */
  close(): Promise<void>
}

function peerCredentials(spec: AccountSpec) {
  return { clientName: spec.clientName, clientPassword: spec.clientPassword, serverName: spec.serverName, serverPassword: spec.serverPassword }
}

/** The first session's plan: the DM Server adds the gateway's account (GwMO seed 001, 8.4.1). */
function gatewayAccountCommands(breakStep: number | undefined) {
  // The planted fault of step 2: the account names the DM Server's own ServerID, which the device refuses.
  return buildAccountCommands(breakStep === 2 ? { ...CAST.gateway, serverId: CAST.server.serverId } : CAST.gateway)
}

function formatLog(line: AgentLogLine): string {
  const { time: _t, level, msg, deviceId: _d, ...rest } = line
  const fields = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
  return `      agent ${String(level).padEnd(5)} ${msg}${fields.length ? ` ${fields.join(' ')}` : ''}`
}

export async function startWorld(options: WorldOptions): Promise<World> {
  const { breakStep, print, timeScale } = options
  const cleanups: Array<() => Promise<unknown> | unknown> = []
  const close = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await Promise.resolve(cleanup()).catch(() => undefined)
  }
  try {
    const dir = mkdtempSync(join(tmpdir(), 'gwmo-demo-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))

    let broker: EmbeddedBroker | undefined
    if (options.brokerUrl === undefined) {
      broker = await startEmbeddedBroker()
      cleanups.push(() => broker?.close())
    }
    const brokerUrl = options.brokerUrl ?? broker!.url

    const wire = await WireWatch.start(brokerUrl, CAST.deviceId, DEFAULT_PREFIX)
    cleanups.push(() => wire.stop())

    const traffic = (who: string) => (e: TrafficEvent) => {
      if (options.verbose) print(`      ${who} ${e.direction === 'in' ? '<' : '>'} ${e.summary}`)
    }
    const server = await startDmServer({
      brokerUrl,
      serverId: CAST.server.serverId,
      deviceId: CAST.deviceId,
      ...peerCredentials(CAST.server),
      // The planted fault of step 1: the server expects another password from the device.
      ...(breakStep === 1 && { clientPassword: 'not-the-device-password' }),
      // The planted fault of step 4: the server does not acknowledge the Associated Gateway alert.
      ...(breakStep === 4 && { genericAlertStatus: (a) => (a.type === ASSOCIATED_GATEWAY ? '500' : '200') }),
      onTraffic: traffic('DM Server'),
    })
    cleanups.push(() => server.stop())
    server.queueSession(gatewayAccountCommands(breakStep))

    const gateway = await startGateway({
      brokerUrl,
      gatewayId: CAST.gateway.serverId,
      deviceId: CAST.deviceId,
      ...peerCredentials(CAST.gateway),
      // The planted fault of step 3: the gateway signs with a password the device does not hold.
      ...(breakStep === 3 && { serverPassword: 'not-the-gateway-password' }),
      onTraffic: traffic('gateway'),
    })
    cleanups.push(() => gateway.stop())

    const server2 = await startDmServer({
      brokerUrl,
      serverId: CAST.server2.serverId,
      deviceId: CAST.deviceId,
      ...peerCredentials(CAST.server2),
      http: {},
      onTraffic: traffic('DM Server 2'),
    })
    cleanups.push(() => server2.stop())

    const locationFile = join(dir, 'location.json')
    writeFileSync(locationFile, JSON.stringify(CAST.locationBefore) + '\n')
    // binding.md §8: the device's own objects, on files of the demo's folder. Programs run without a shell, from
    // root-owned files; the planted fault of step 8 is an Exec whose program fails.
    const o = CAST.objects
    const objectFiles = { cpuTemp: join(dir, o.cpuTemp.file), uptime: join(dir, o.uptime.file), setting: join(dir, o.setting.file) }
    writeFileSync(objectFiles.cpuTemp, o.cpuTemp.content)
    writeFileSync(objectFiles.uptime, o.uptime.content)
    writeFileSync(objectFiles.setting, o.setting.content)
    const objects = [
      { path: o.cpuTemp.uri, format: 'int', read: { file: objectFiles.cpuTemp } },
      { path: o.uptime.uri, format: 'float', read: { command: ['/usr/bin/cut', '-d', ' ', '-f', '1', objectFiles.uptime] } },
      { path: o.setting.uri, format: 'int', acl: `Get=*&Replace=${CAST.server.serverId}`, write: { file: objectFiles.setting } },
      { path: o.exec.uri, acl: `Get=*&Exec=${CAST.server.serverId}`, exec: { command: [breakStep === 8 ? '/usr/bin/false' : '/usr/bin/true'] } },
    ]
    // binding.md §9: a module that only records what it is asked (harmless on any machine), and an HTTP server for
    // the package; the planted fault of step 9 is an install that fails.
    const f = CAST.fumo
    const fumoCalls = join(dir, f.calls)
    const fumoModule = join(dir, f.module)
    writeFileSync(fumoModule, [
      '#!/bin/sh',
      `echo "$1 $(sha256sum < "$2" | cut -c1-64)" >> '${fumoCalls}'`,
      breakStep === 9 ? '[ "$1" = install ] && exit 1' : '',
      'exit 0',
      '',
    ].join('\n'), { mode: 0o755 })
    const packages = createServer((_req, res) => res.end(f.package))
    await new Promise<void>((resolve) => packages.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => new Promise((resolve) => packages.close(resolve)))
    const fumo = { packageUrl: `http://127.0.0.1:${(packages.address() as AddressInfo).port}/firmware-2.0.bin`, calls: fumoCalls }
    const factory = buildMessage(
      { sessionId: '0', msgId: '1', target: CAST.deviceId, source: 'factory' },
      buildAccountCommands(CAST.server),
    ).xml
    writeFileSync(join(dir, 'factory-bootstrap.xml'), factory)
    const config = {
      deviceId: CAST.deviceId,
      broker: { url: brokerUrl },
      stateDir: join(dir, 'state'),
      factoryBootstrap: join(dir, 'factory-bootstrap.xml'),
      networkId: CAST.networkId,
      devInfo: { man: 'Example Devices Ltd', mod: 'GwMO demo end device', lang: 'en-US' },
      // Short timers: on a local broker an answer takes milliseconds, and a failure should show within a step.
      session: { timeoutSeconds: 5 * timeScale, retries: 2, retryBackoffSeconds: timeScale, maxBackoffSeconds: 4 * timeScale },
      location: { pollSeconds: 1, sourceFile: locationFile },
      objects,
      fumo: { module: fumoModule, installer: 'direct', acl: `Get=*&Replace=${CAST.server.serverId}&Exec=${CAST.server.serverId}` },
    }
    const configFile = join(dir, 'config.json')
    writeFileSync(configFile, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 })

    const agent = new AgentChild({
      bundle: options.agentBundle,
      ...(options.agentRuntime !== undefined && { runtime: options.agentRuntime }),
      configFile,
      logLevel: options.verbose ? 'debug' : 'info',
      stopGraceMs: STOP_GRACE_MS * timeScale,
      onLog: (line) => {
        if (options.verbose) print(formatLog(line))
      },
    })
    cleanups.push(() => agent.stop())

    return { brokerUrl, objectFiles, fumo, embedded: broker !== undefined, dir, locationFile, server, gateway, server2, agent, wire, timeScale, breakStep, print, close }
  } catch (error) {
    await close()
    throw error
  }
}
