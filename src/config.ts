/**
 * The agent's configuration (binding.md §7): one JSON file, checked whole before anything starts, so a bad
 * configuration exits with one line naming the key and the agent never runs half-configured.
 *
 * Secrets may come from the environment instead of the file: `GWMO_BROKER_PASSWORD`, `GWMO_USER_PIN` and
 * `GWMO_NETWORK_ID`. When both are set, the environment wins (a systemd `EnvironmentFile` or credential can
 * then override a file that is readable more widely); an empty variable counts as unset.
 *
 * Every default lives in `CONFIG_DEFAULTS` below and nowhere else.
 */
import { ConfigError } from './errors.ts'
import { readFile } from 'node:fs/promises'
import { dirname, isAbsolute, resolve } from 'node:path'
import { brokerOrigin } from './transport/topics.ts'
import { parseObjects, readObjectsDir, type ObjectSpec } from './objects/spec.ts'

export type AcceptDetectionFrom = 'bootstrapped' | 'any'
export type ConfigLogLevel = 'debug' | 'info' | 'warn' | 'error'

export interface BrokerConfig {
  /** `mqtt://host[:port]` or `mqtts://host[:port]`. */
  readonly url: string
  readonly username?: string
  readonly password?: string
  /** File paths of PEM material; also used for `mqtts://` brokers named by a party's AppAddr. */
  readonly ca?: string
  readonly cert?: string
  readonly key?: string
  readonly clientId: string
  readonly keepaliveSeconds: number
}

/**
 * Values of `./DevInfo` and `./DevDetail` set by the device's owner. Where `man`, `fwV`, `swV` and `hwV` are
 * unset, the device describes itself (runtime/device-info.ts, binding.md §8).
 */
export interface DevInfoConfig {
  readonly man?: string
  readonly mod: string
  readonly lang: string
  readonly devTyp: string
  readonly fwV?: string
  readonly swV?: string
  readonly hwV?: string
  readonly oem?: string
}

export interface SessionConfig {
  /** How long the device waits for an answer before sending the same message again (binding.md §3). */
  readonly timeoutSeconds: number
  /** How many times a message is sent again before the session is given up. */
  readonly retries: number
  /** First delay before a failed session is tried again; doubled each time, up to `maxBackoffSeconds`. */
  readonly retryBackoffSeconds: number
  readonly maxBackoffSeconds: number
}

export interface LocationConfig {
  /** How often the network location is looked at (binding.md §4.6). */
  readonly pollSeconds: number
  readonly enabled: boolean
  /**
   * A JSON file `{ "addresses": [...], "defaultGateway": "…" }` read instead of the OS's interfaces and routes:
   * for devices whose location is known to another program, and for tests.
   */
  readonly sourceFile?: string
}

/**
 * The device's bounds (binding.md §11), so that no input can exhaust it and no party starve another. Past a tree
 * bound an `Add` or `Replace` answers 420 (Device full) and changes nothing.
 */
export interface LimitsConfig {
  /** Most nodes the management tree holds. */
  readonly maxNodes: number
  /** Most bytes the tree's nodes hold (paths, types, ACLs and data, as stored). */
  readonly treeBytes: number
  /** Most bytes of one leaf's data. */
  readonly leafBytes: number
  /** Most nodes one party may have added and the tree still holds (the device's own count for no party). */
  readonly nodesPerParty: number
  /** Most bytes of those nodes. */
  readonly bytesPerParty: number
  /** Most Generic Alerts waiting for one party; past it the oldest that may be dropped goes. */
  readonly pendingAlertsPerParty: number
  /** Device Detection Alerts taken from one gateway a minute (a bucket that holds as many); the rest get 417. */
  readonly detectionsPerMinute: number
}

/** binding.md §9: the FUMO object `./FUMO/<name>`, present when the configuration has a `fumo` section. */
export interface FumoConfig {
  readonly name: string
  /** The object's DM ACL: which servers may Replace its leaves and Exec its operations. */
  readonly acl: string
  /** The update module, `MODULE VERB PACKAGE` (an absolute path). */
  readonly module: string
  /** `spool`: a root-side installer runs the module on what the agent spools; `direct`: the agent runs it. */
  readonly installer: 'spool' | 'direct'
  /** Where `spool` leaves packages and requests (the agent's to write). */
  readonly spoolDir: string
  /** Where the root-side installer leaves its result (root's to write, the agent's to read). */
  readonly spoolResult: string
  readonly maxBytes: number
  /** PEM file of the CAs a download server's certificate must chain to, instead of the system's. */
  readonly ca?: string
  /** The longest a module's verb may run (SIGTERM, then SIGKILL). */
  readonly timeoutSeconds: number
}

export interface AgentConfig {
  readonly deviceId: string
  readonly broker: BrokerConfig
  readonly stateDir: string
  readonly factoryBootstrap: string
  readonly topicPrefix: string
  /** Announced in CONNECT as MQTT 5 Maximum Packet Size; larger inbound packets are dropped. */
  readonly maxPacketSize: number
  readonly userPin?: string
  readonly networkId?: string
  readonly devInfo: DevInfoConfig
  readonly acceptDetectionFrom: AcceptDetectionFrom
  readonly logLevel: ConfigLogLevel
  readonly session: SessionConfig
  readonly location: LocationConfig
  readonly limits: LimitsConfig
  /** The device's own objects (binding.md §8): the configuration's, then `objectsDir`'s (read by `loadConfigFile`). */
  readonly objects: readonly ObjectSpec[]
  readonly objectsDir?: string
  readonly fumo?: FumoConfig
}

export type ConfigResult = { ok: true; config: AgentConfig } | { ok: false; error: string }

/** The one place for configuration defaults and limits. */
export const CONFIG_DEFAULTS = deepFreeze({
  /** binding.md §2. */
  topicPrefix: 'omadm/v1',
  /** binding.md §2: 64 KiB, within 1 KiB .. 256 MiB (MQTT's own limit is just above 256 MiB). */
  maxPacketSize: 65536,
  minPacketSize: 1024,
  maxMaxPacketSize: 256 * 1024 * 1024,
  /** MQTT keepalive; the broker drops the device (and publishes its will) after 1.5 times this. */
  keepaliveSeconds: 30,
  /** The MQTT client id is this prefix and the DevId, unless `broker.clientId` is set. */
  clientIdPrefix: 'gwmo-',
  acceptDetectionFrom: 'bootstrapped' as AcceptDetectionFrom,
  logLevel: 'info' as ConfigLogLevel,
  session: { timeoutSeconds: 30, retries: 3, retryBackoffSeconds: 5, maxBackoffSeconds: 600 },
  location: { pollSeconds: 30, enabled: true },
  devInfo: { mod: 'unknown', lang: 'en-US', devTyp: 'gateway-end-device' },
  /**
   * binding.md §11. Each party's quota is an eighth of the tree (nodes and bytes), so that seven parties at their
   * quotas leave the device and an eighth party room; a leaf holds a certificate chain; a party's pending alerts
   * fit one Package 1 (`maxGenericAlertsPerPackage`); a gateway detects a device when it joins, not every second.
   */
  fumo: { name: '1', acl: 'Get=*', installer: 'direct', spoolResult: '/var/lib/gwmo-agent-installer/result', maxBytes: 256 * 1024 * 1024, timeoutSeconds: 1800 },
  limits: {
    maxNodes: 2000,
    treeBytes: 1024 * 1024,
    leafBytes: 16 * 1024,
    nodesPerParty: 250,
    bytesPerParty: 128 * 1024,
    pendingAlertsPerParty: 16,
    detectionsPerMinute: 6,
  } satisfies LimitsConfig,
})

/** Environment variables that may carry the secrets instead of the file. */
export const SECRET_ENV = Object.freeze({
  brokerPassword: 'GWMO_BROKER_PASSWORD',
  userPin: 'GWMO_USER_PIN',
  networkId: 'GWMO_NETWORK_ID',
})

export interface ParseOptions {
  /** Relative paths (`stateDir`, `factoryBootstrap`, `broker.ca/cert/key`) are resolved against this. */
  baseDir?: string
}

type Json = Record<string, unknown>

// ConfigError is thrown only inside this module and turned into `{ ok: false }` at its edge.

const fail = (key: string, problem: string): never => {
  throw new ConfigError(`config: ${key}: ${problem}`)
}

/** The keys of each section ('' is the top level), space-separated: the unknown-key check and `devInfo` read them. */
const KNOWN_KEYS: Record<string, string> = {
  '': 'deviceId broker stateDir factoryBootstrap topicPrefix maxPacketSize userPin networkId devInfo ' +
    'acceptDetectionFrom logLevel session location limits objects objectsDir fumo',
  broker: 'url username password ca cert key clientId keepaliveSeconds',
  devInfo: 'man mod lang devTyp fwV swV hwV oem',
  session: 'timeoutSeconds retries retryBackoffSeconds maxBackoffSeconds',
  location: 'pollSeconds enabled sourceFile',
  limits: 'maxNodes treeBytes leafBytes nodesPerParty bytesPerParty pendingAlertsPerParty detectionsPerMinute',
  fumo: 'name acl module installer spoolDir spoolResult maxBytes ca timeoutSeconds',
}

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** Unknown keys are reported before anything else, so a typo is named rather than the key it hid. */
function checkKnownKeys(raw: Json): void {
  for (const [name, known] of Object.entries(KNOWN_KEYS)) {
    const object = name === '' ? raw : raw[name]
    if (!isObject(object)) continue
    for (const key of Object.keys(object)) {
      if (!known.split(' ').includes(key)) throw new ConfigError(`config: unknown key "${name ? `${name}.` : ''}${key}"`)
    }
  }
}

/** One object of the file and the prefix its keys are named with in messages (`broker.`, or '' at the top). */
interface Section {
  values: Json
  prefix: string
  /** Relative paths in it are resolved against this. */
  baseDir: string | undefined
}

function section(top: Section, key: string, required = false): Section {
  const value = top.values[key]
  if (value === undefined && required) fail(key, 'required')
  // JSON null is a value, and not an object.
  const values = value === undefined ? {} : isObject(value) ? value : fail(key, 'must be an object')
  return { values, prefix: `${key}.`, baseDir: top.baseDir }
}

// Values are never echoed in messages: some of them are secrets.
function text(s: Section, key: string, required: true): string
function text(s: Section, key: string, required?: false): string | undefined
function text(s: Section, key: string, required = false): string | undefined {
  const value = s.values[key]
  const name = s.prefix + key
  if (value === undefined) return required ? fail(name, 'required') : undefined
  if (typeof value !== 'string' || value === '') return fail(name, 'must be a non-empty string')
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) return fail(name, 'must not contain control characters')
  return value
}

function integer(s: Section, key: string, fallback: number, min: number, max: number): number {
  const value = s.values[key] === undefined ? fallback : s.values[key]
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    return fail(s.prefix + key, `must be an integer from ${min} to ${max}`)
  }
  return value
}

function oneOf<T extends string>(s: Section, key: string, choices: readonly T[], fallback: T): T {
  const value = s.values[key] === undefined ? fallback : s.values[key]
  return choices.includes(value as T) ? (value as T) : fail(s.prefix + key, `must be one of ${choices.map((c) => `"${c}"`).join(', ')}`)
}

/** A path; a relative one is taken relative to the section's `baseDir` when there is one. */
function path(s: Section, key: string, required: true): string
function path(s: Section, key: string): string | undefined
function path(s: Section, key: string, required = false): string | undefined {
  const value = required ? text(s, key, true) : text(s, key)
  return value === undefined || s.baseDir === undefined || isAbsolute(value) ? value : resolve(s.baseDir, value)
}

/** A secret: the environment variable when it is set and not empty, else the file's value. */
function secret(s: Section, key: string, env: Record<string, string | undefined>, name: string): string | undefined {
  return env[name] || text(s, key)
}

function brokerUrl(value: string): string {
  // brokerOrigin accepts exactly a URL with the mqtt: or mqtts: scheme and a host.
  if (brokerOrigin(value) === undefined) return fail('broker.url', 'must be an mqtt:// or mqtts:// URL')
  const url = new URL(value)
  // Credentials in the URL would end up wherever the URL is logged.
  if (url.username !== '' || url.password !== '') {
    return fail('broker.url', 'must not hold credentials (use broker.username and broker.password)')
  }
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
    return fail('broker.url', 'must not have a path, query or fragment')
  }
  return value
}

function topicPrefix(top: Section): string {
  const prefix = text(top, 'topicPrefix') ?? CONFIG_DEFAULTS.topicPrefix
  // MQTT 5, 4.7: wildcards are not allowed in a topic name; empty levels would make a different topic.
  if (/[+#]/.test(prefix) || prefix.split('/').includes('')) {
    fail('topicPrefix', 'must be topic levels without "+", "#" or empty levels')
  }
  return prefix
}

function parseBroker(top: Section, env: Record<string, string | undefined>, deviceId: string): BrokerConfig {
  const broker = section(top, 'broker', true)
  const url = brokerUrl(text(broker, 'url', true))
  const cert = path(broker, 'cert')
  const key = path(broker, 'key')
  if (cert !== undefined && key === undefined) fail('broker.key', 'required with broker.cert')
  if (key !== undefined && cert === undefined) fail('broker.cert', 'required with broker.key')
  const username = text(broker, 'username')
  // MQTT 5, 3.1.2.9: a password without a user name is allowed.
  const password = secret(broker, 'password', env, SECRET_ENV.brokerPassword)
  const ca = path(broker, 'ca')
  const clientId = text(broker, 'clientId')
  if (clientId !== undefined && Buffer.byteLength(clientId) > 65535) fail('broker.clientId', 'must be at most 65535 bytes')
  return {
    url,
    username,
    password,
    ca,
    cert,
    key,
    clientId: clientId ?? CONFIG_DEFAULTS.clientIdPrefix + deviceId,
    keepaliveSeconds: integer(broker, 'keepaliveSeconds', CONFIG_DEFAULTS.keepaliveSeconds, 1, 65535),
  }
}

function parseDevInfo(top: Section): DevInfoConfig {
  const devInfo = section(top, 'devInfo')
  const parsed: Record<string, string | undefined> = { ...CONFIG_DEFAULTS.devInfo }
  for (const key of KNOWN_KEYS.devInfo.split(' ')) parsed[key] = text(devInfo, key) ?? parsed[key]
  return parsed as unknown as DevInfoConfig
}

function parseSession(top: Section): SessionConfig {
  const session = section(top, 'session')
  const defaults = CONFIG_DEFAULTS.session
  const seconds = (key: keyof SessionConfig, min: number, max: number) => integer(session, key, defaults[key], min, max)
  const parsed = {
    timeoutSeconds: seconds('timeoutSeconds', 1, 3600),
    retries: seconds('retries', 0, 100),
    retryBackoffSeconds: seconds('retryBackoffSeconds', 1, 86400),
    maxBackoffSeconds: seconds('maxBackoffSeconds', 1, 7 * 86400),
  }
  if (parsed.maxBackoffSeconds < parsed.retryBackoffSeconds) {
    fail('session.maxBackoffSeconds', 'must not be less than session.retryBackoffSeconds')
  }
  return parsed
}

function parseLocation(top: Section): LocationConfig {
  const location = section(top, 'location')
  const enabled = location.values.enabled ?? CONFIG_DEFAULTS.location.enabled
  if (typeof enabled !== 'boolean') fail('location.enabled', 'must be true or false')
  return {
    pollSeconds: integer(location, 'pollSeconds', CONFIG_DEFAULTS.location.pollSeconds, 1, 86400),
    enabled: enabled as boolean,
    sourceFile: path(location, 'sourceFile'),
  }
}

function parseLimits(top: Section): LimitsConfig {
  const limits = section(top, 'limits')
  const defaults = CONFIG_DEFAULTS.limits
  const value = (key: keyof LimitsConfig, min: number, max: number) => integer(limits, key, defaults[key], min, max)
  const maxNodes = value('maxNodes', 64, 10_000_000)
  const treeBytes = value('treeBytes', 4096, 2 ** 31)
  return {
    maxNodes,
    treeBytes,
    leafBytes: value('leafBytes', 1, treeBytes),
    // 0: parties add nothing (the device's own bootstraps still do).
    nodesPerParty: value('nodesPerParty', 0, maxNodes),
    bytesPerParty: value('bytesPerParty', 0, treeBytes),
    pendingAlertsPerParty: value('pendingAlertsPerParty', 1, 10_000),
    detectionsPerMinute: value('detectionsPerMinute', 1, 6000),
  }
}

function parseFumo(top: Section, stateDir: string): FumoConfig | undefined {
  if (top.values.fumo === undefined) return undefined
  const fumo = section(top, 'fumo')
  const defaults = CONFIG_DEFAULTS.fumo
  const name = text(fumo, 'name') ?? defaults.name
  if (!/^[A-Za-z0-9_.-]+$/.test(name) || name === '.' || name === '..') fail('fumo.name', 'must be one node name (letters, digits, _ . -)')
  const module = path(fumo, 'module', true)
  if (!isAbsolute(module)) fail('fumo.module', 'must be an absolute path')
  return {
    name,
    acl: text(fumo, 'acl') ?? defaults.acl,
    module,
    installer: oneOf(fumo, 'installer', ['spool', 'direct'], defaults.installer as 'spool' | 'direct'),
    spoolDir: path(fumo, 'spoolDir') ?? resolve(stateDir, 'fumo-spool'),
    spoolResult: path(fumo, 'spoolResult') ?? defaults.spoolResult,
    maxBytes: integer(fumo, 'maxBytes', defaults.maxBytes, 1, Number.MAX_SAFE_INTEGER),
    ca: path(fumo, 'ca'),
    timeoutSeconds: integer(fumo, 'timeoutSeconds', defaults.timeoutSeconds, 1, 86400),
  }
}

function parseObjectList(top: Section): ObjectSpec[] {
  const raw = top.values.objects
  if (raw === undefined) return []
  if (!Array.isArray(raw)) return fail('objects', 'must be a list')
  const parsed = parseObjects(raw, 'objects')
  if (!parsed.ok) throw new ConfigError(`config: ${parsed.error}`)
  return parsed.objects
}

/** Freezes a value and every object in it, and drops the keys of optional values left unset. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const [key, inner] of Object.entries(value)) {
      if (inner === undefined) delete (value as Json)[key]
      else deepFreeze(inner)
    }
    Object.freeze(value)
  }
  return value
}

/**
 * Checks a parsed JSON value and returns the whole configuration with every default filled in, frozen;
 * or the first problem as one line naming the key. See the module comment for the environment variables.
 */
export function parseConfig(raw: unknown, env: Record<string, string | undefined>, options: ParseOptions = {}): ConfigResult {
  try {
    if (!isObject(raw)) throw new ConfigError('config: must be a JSON object')
    checkKnownKeys(raw)
    const top: Section = { values: raw, prefix: '', baseDir: options.baseDir }
    const deviceId = text(top, 'deviceId', true)
    if (/\s/.test(deviceId)) fail('deviceId', 'must not contain white space')
    const config: AgentConfig = {
      deviceId,
      broker: parseBroker(top, env, deviceId),
      stateDir: path(top, 'stateDir', true),
      factoryBootstrap: path(top, 'factoryBootstrap', true),
      topicPrefix: topicPrefix(top),
      maxPacketSize: integer(top, 'maxPacketSize', CONFIG_DEFAULTS.maxPacketSize,
        CONFIG_DEFAULTS.minPacketSize, CONFIG_DEFAULTS.maxMaxPacketSize),
      userPin: secret(top, 'userPin', env, SECRET_ENV.userPin),
      networkId: secret(top, 'networkId', env, SECRET_ENV.networkId),
      devInfo: parseDevInfo(top),
      acceptDetectionFrom: oneOf(top, 'acceptDetectionFrom', ['bootstrapped', 'any'], CONFIG_DEFAULTS.acceptDetectionFrom),
      logLevel: oneOf(top, 'logLevel', ['debug', 'info', 'warn', 'error'], CONFIG_DEFAULTS.logLevel),
      session: parseSession(top),
      location: parseLocation(top),
      limits: parseLimits(top),
      objects: parseObjectList(top),
      objectsDir: path(top, 'objectsDir'),
    }
    const fumo = parseFumo(top, config.stateDir)
    if (fumo !== undefined) Object.assign(config, { fumo })
    return { ok: true, config: deepFreeze(config) }
  } catch (error) {
    if (error instanceof ConfigError) return { ok: false, error: error.message }
    throw error
  }
}

/**
 * Where a JSON syntax error is, as `line L, column C` (1-based). The engine's own message is not passed on:
 * newer engines quote the text around the error, and that text may be a secret.
 */
function syntaxErrorPosition(source: string, error: unknown): string {
  const message = (error as Error).message
  const lineColumn = /line (\d+) column (\d+)/.exec(message)
  if (lineColumn) return `line ${lineColumn[1]}, column ${lineColumn[2]}`
  const offset = Number(/position (\d+)/.exec(message)?.[1] ?? source.length)
  const before = source.slice(0, offset)
  return `line ${before.split('\n').length}, column ${offset - before.lastIndexOf('\n')}`
}

const errnoCode = (error: unknown): string => (error as NodeJS.ErrnoException).code ?? 'error'

/**
 * Reads and checks a configuration file. Relative paths in it are taken relative to the file's directory, so
 * the agent behaves the same whatever directory it is started from.
 */
export async function loadConfigFile(file: string, env: Record<string, string | undefined>): Promise<ConfigResult> {
  let source: string
  try {
    source = (await readFile(file, 'utf8')).replace(/^\uFEFF/, '')
  } catch (error) {
    return { ok: false, error: `config: ${file}: cannot read (${errnoCode(error)})` }
  }
  let raw: unknown
  try {
    raw = JSON.parse(source)
  } catch (error) {
    return { ok: false, error: `config: ${file}: invalid JSON at ${syntaxErrorPosition(source, error)}` }
  }
  const parsed = parseConfig(raw, env, { baseDir: dirname(resolve(file)) })
  if (!parsed.ok || parsed.config.objectsDir === undefined) return parsed
  const dropIns = await readObjectsDir(parsed.config.objectsDir, parsed.config.objects)
  if (!dropIns.ok) return { ok: false, error: `config: ${dropIns.error}` }
  return { ok: true, config: deepFreeze({ ...parsed.config, objects: [...parsed.config.objects, ...dropIns.objects] }) }
}

export interface BrokerTls {
  ca?: Buffer
  cert?: Buffer
  key?: Buffer
}

/** Reads the broker's PEM files once at start, so a missing file stops the agent with the key that named it. */
export async function readBrokerTls(broker: BrokerConfig): Promise<{ ok: true; tls: BrokerTls } | { ok: false; error: string }> {
  const tls: BrokerTls = {}
  for (const key of ['ca', 'cert', 'key'] as const) {
    const file = broker[key]
    if (file === undefined) continue
    try {
      tls[key] = await readFile(file)
    } catch (error) {
      return { ok: false, error: `config: broker.${key}: cannot read ${file} (${errnoCode(error)})` }
    }
  }
  return { ok: true, tls }
}
