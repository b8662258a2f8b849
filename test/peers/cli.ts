/**
 * The peers from the command line, against any broker, for testing a real gateway or server with the agent:
 *
 *   peers dm-server --broker URL --server-id ID --device-id ID [credentials] [--get URI…] [--notify HEX]
 *   peers gateway detect --broker URL --gateway-id ID --device-id ID [credentials] --gw-address A --share BOOL
 *   peers bootstrap --broker URL --device-id ID --sec METHOD [--user-pin P] [--network-id N] (--file F | account)
 *
 * Every message sent or received is printed as one line. Bundled into `dist/peers.js`, so nothing here relies
 * on ES module features beyond what the bundle keeps.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import type { AuthType, SecMethod } from './auth.ts'
import { buildAccountCommands, sendBootstrap } from './bootstrap-server.ts'
import { del, exec, get, replace, type OutCommand } from './commands.ts'
import { startDmServer } from './dm-server.ts'
import { startGateway, type DetectionForm } from './gateway.ts'
import { topicFor } from './mqtt.ts'
import type { TrafficEvent } from './party.ts'

type Print = (line: string) => void

const USAGE = `usage:
  peers dm-server --broker URL --server-id ID --device-id ID --server-name N --server-password P
                  --client-name N --client-password P [--server-nonce B64] [--client-nonce B64]
                  [--auth md5|basic|hmac] [--encoding xml|wbxml] [--challenge407 never|once|every]
                  [--get URI]... [--replace URI=VALUE]... [--exec URI]... [--delete URI]...
                  [--notify SESSIONID_HEX [--digest-nonce stored|zero-bytes|text|wrong]] [--push]
                  [--sessions N]
  peers gateway detect --broker URL --gateway-id ID --device-id ID --server-name N --server-password P
                  --client-name N --client-password P --gw-address ADDR --share true|false
                  [--form item-escaped|item-cdata|inline-cdata] [--addr-element GwAddress|GwAddr]
                  [--share-text TEXT] [--no-auth] [--timeout SECONDS]
  peers bootstrap --broker URL --device-id ID --sec NETWORKID|USERPIN|USERPIN_NETWORKID
                  [--user-pin PIN] [--network-id SECRET] [--key KEY] [--mac HEX] [--encoding xml|wbxml]
                  (--file MESSAGE.xml | --account-id X --server-id ID --addr ADDR --client-name N
                   --client-password P --server-name N --server-password P [--role gateway])`

const CREDENTIALS = {
  broker: { type: 'string' },
  'device-id': { type: 'string' },
  'server-name': { type: 'string' },
  'server-password': { type: 'string' },
  'client-name': { type: 'string' },
  'client-password': { type: 'string' },
  'server-nonce': { type: 'string' },
  'client-nonce': { type: 'string' },
  auth: { type: 'string' },
  encoding: { type: 'string' },
  prefix: { type: 'string' },
} as const

class UsageError extends Error {}

function required(values: Record<string, unknown>, name: string): string {
  const value = values[name]
  if (typeof value !== 'string' || value === '') throw new UsageError(`--${name} is required`)
  return value
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], name: string): T | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T
  throw new UsageError(`--${name} must be one of ${allowed.join(', ')}`)
}

function traffic(print: Print): (e: TrafficEvent) => void {
  return (e) => print(`${e.direction === 'in' ? '<' : '>'} ${e.topic} ${e.summary}`)
}

function scriptedCommands(values: Record<string, unknown>): OutCommand[] {
  const list = (name: string) => (values[name] as string[] | undefined) ?? []
  return [
    ...list('get').map((uri) => get(uri)),
    ...list('replace').map((pair) => {
      const eq = pair.indexOf('=')
      if (eq <= 0) throw new UsageError('--replace takes URI=VALUE')
      return replace(pair.slice(0, eq), pair.slice(eq + 1))
    }),
    ...list('exec').map((uri) => exec(uri)),
    ...list('delete').map((uri) => del(uri)),
  ]
}

async function runDmServer(args: string[], print: Print): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...CREDENTIALS,
      'server-id': { type: 'string' },
      challenge407: { type: 'string' },
      get: { type: 'string', multiple: true },
      replace: { type: 'string', multiple: true },
      exec: { type: 'string', multiple: true },
      delete: { type: 'string', multiple: true },
      notify: { type: 'string' },
      'digest-nonce': { type: 'string' },
      push: { type: 'boolean' },
      sessions: { type: 'string' },
    },
  })
  const commands = scriptedCommands(values)
  const server = await startDmServer({
    brokerUrl: required(values, 'broker'),
    serverId: required(values, 'server-id'),
    deviceId: required(values, 'device-id'),
    serverName: required(values, 'server-name'),
    serverPassword: required(values, 'server-password'),
    clientName: required(values, 'client-name'),
    clientPassword: required(values, 'client-password'),
    serverNonce: values['server-nonce'],
    clientNonce: values['client-nonce'],
    authType: oneOf<AuthType>(values.auth, ['md5', 'basic', 'hmac'], 'auth'),
    encoding: oneOf(values.encoding, ['xml', 'wbxml'] as const, 'encoding'),
    challenge407: oneOf(values.challenge407, ['never', 'once', 'every'] as const, 'challenge407'),
    topicPrefix: values.prefix,
    onTraffic: traffic(print),
  })
  server.script(() => commands)
  print(`listening on ${topicFor(server.serverId, 'dm', values.prefix)}`)
  if (values.push) await server.pushSession(commands)
  if (values.notify !== undefined) {
    const sessionId = parseInt(values.notify, 16)
    if (!(sessionId >= 1 && sessionId <= 0xffff)) throw new UsageError('--notify takes a session id 1..FFFF in hex')
    const digestNonce = oneOf(values['digest-nonce'], ['stored', 'zero-bytes', 'text', 'wrong'] as const, 'digest-nonce')
    await server.sendNotification({ sessionId, digestNonce })
  }
  const wanted = values.sessions === undefined ? Infinity : Number(values.sessions)
  let reported = 0
  const report = () => {
    for (const s of server.sessions.filter((x) => x.closed).slice(reported)) {
      reported++
      print(`session ${s.sessionId} closed: device ${s.deviceAuthenticated ? 'authenticated' : 'not authenticated'}`)
      for (const st of s.statuses) print(`  status ${st.cmd} ${st.target ?? st.cmdRef}: ${st.code}`)
      for (const r of s.results) for (const i of r.items) print(`  result ${i.source ?? '?'} = ${i.data ?? ''}`)
      for (const a of s.genericAlerts) print(`  generic alert ${a.type} (${a.format}): ${a.data.trim()}`)
    }
  }
  await new Promise<void>((resolve) => {
    const stop = () => resolve()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    void server.waitFor(() => (report(), reported >= wanted ? true : undefined), 2 ** 31 - 1, 'sessions').then(stop)
  })
  report()
  await server.stop()
  return 0
}

async function runGateway(args: string[], print: Print): Promise<number> {
  const [action, ...rest] = args
  if (action !== 'detect') throw new UsageError('gateway: the only action is detect')
  const { values } = parseArgs({
    args: rest,
    options: {
      ...CREDENTIALS,
      'gateway-id': { type: 'string' },
      'gw-address': { type: 'string' },
      share: { type: 'string' },
      form: { type: 'string' },
      'addr-element': { type: 'string' },
      'share-text': { type: 'string' },
      'no-auth': { type: 'boolean' },
      timeout: { type: 'string' },
    },
  })
  const share = oneOf(required(values, 'share'), ['true', 'false'] as const, 'share') === 'true'
  const gateway = await startGateway({
    brokerUrl: required(values, 'broker'),
    gatewayId: required(values, 'gateway-id'),
    deviceId: required(values, 'device-id'),
    serverName: required(values, 'server-name'),
    serverPassword: required(values, 'server-password'),
    clientName: required(values, 'client-name'),
    clientPassword: required(values, 'client-password'),
    serverNonce: values['server-nonce'],
    clientNonce: values['client-nonce'],
    authType: oneOf<AuthType>(values.auth, ['md5', 'basic', 'hmac'], 'auth'),
    encoding: oneOf(values.encoding, ['xml', 'wbxml'] as const, 'encoding'),
    noAuth: values['no-auth'] ?? false,
    topicPrefix: values.prefix,
    onTraffic: traffic(print),
  })
  try {
    const ids = await gateway.detect({
      gwAddress: required(values, 'gw-address'),
      share,
      form: oneOf<DetectionForm>(values.form, ['item-escaped', 'item-cdata', 'inline-cdata'], 'form'),
      addrElement: oneOf(values['addr-element'], ['GwAddress', 'GwAddr'] as const, 'addr-element'),
      shareText: values['share-text'],
      timeoutMs: Number(values.timeout ?? '10') * 1000,
    })
    for (const id of ids) print(`server ${id}`)
    return 0
  } catch (err) {
    print(`no Bootstrapped DMS List: ${(err as Error).message}`)
    return 1
  } finally {
    await gateway.stop()
  }
}

async function runBootstrap(args: string[], print: Print): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      broker: { type: 'string' },
      'device-id': { type: 'string' },
      sec: { type: 'string' },
      'user-pin': { type: 'string' },
      'network-id': { type: 'string' },
      key: { type: 'string' },
      mac: { type: 'string' },
      encoding: { type: 'string' },
      file: { type: 'string' },
      'account-id': { type: 'string' },
      'server-id': { type: 'string' },
      addr: { type: 'string' },
      'client-name': { type: 'string' },
      'client-password': { type: 'string' },
      'server-name': { type: 'string' },
      'server-password': { type: 'string' },
      role: { type: 'string' },
      prefix: { type: 'string' },
    },
  })
  const sec = oneOf<SecMethod>(required(values, 'sec'), ['NETWORKID', 'USERPIN', 'USERPIN_NETWORKID'], 'sec')!
  const xml = values.file !== undefined ? readFileSync(values.file, 'utf8') : undefined
  const commands =
    xml === undefined
      ? buildAccountCommands({
          id: required(values, 'account-id'),
          serverId: required(values, 'server-id'),
          addr: required(values, 'addr'),
          clientName: required(values, 'client-name'),
          clientPassword: required(values, 'client-password'),
          serverName: required(values, 'server-name'),
          serverPassword: required(values, 'server-password'),
          role: oneOf(values.role, ['gateway'] as const, 'role'),
        })
      : undefined
  await sendBootstrap({
    brokerUrl: required(values, 'broker'),
    deviceId: required(values, 'device-id'),
    xml,
    commands,
    encoding: oneOf(values.encoding, ['xml', 'wbxml'] as const, 'encoding') ?? 'wbxml',
    sec,
    key: values.key,
    userPin: values['user-pin'],
    networkId: values['network-id'],
    macOverride: values.mac,
    topicPrefix: values.prefix,
    onTraffic: print,
  })
  return 0
}

/** Runs one subcommand; resolves with the process exit code (2 for a usage error). */
export async function main(argv: string[], print: Print = (line) => console.log(line)): Promise<number> {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case 'dm-server':
        return await runDmServer(rest, print)
      case 'gateway':
        return await runGateway(rest, print)
      case 'bootstrap':
        return await runBootstrap(rest, print)
      default:
        throw new UsageError(command === undefined ? 'a subcommand is required' : `unknown subcommand ${command}`)
    }
  } catch (err) {
    const usage = err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
    console.error(usage ? `${(err as Error).message}\n${USAGE}` : `error: ${(err as Error).message}`)
    return usage ? 2 : 1
  }
}

// Run when this file (or the bundle built from it) is the program, not when a test imports it.
const entry = process.argv[1] ?? ''
if (/(^|[\\/])(cli\.ts|peers\.c?js)$/.test(entry)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err)
      process.exit(1)
    },
  )
}
