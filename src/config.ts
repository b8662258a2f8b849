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
import { readFile } from 'node:fs/promises'
import { dirname, isAbsolute, resolve } from 'node:path'

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

/** Values of `./DevInfo` and `./DevDetail` that only the device's owner knows. */
export interface DevInfoConfig {
  readonly man: string
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
}

export type ConfigResult = { ok: true; config: AgentConfig } | { ok: false; error: string }

/** The one place for configuration defaults and limits. */
export const CONFIG_DEFAULTS = Object.freeze({
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
  session: Object.freeze({ timeoutSeconds: 30, retries: 3, retryBackoffSeconds: 5, maxBackoffSeconds: 600 }),
  location: Object.freeze({ pollSeconds: 30, enabled: true }),
  devInfo: Object.freeze({ man: 'unknown', mod: 'unknown', lang: 'en-US', devTyp: 'gateway-end-device' }),
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

/** Thrown only inside this module and turned into `{ ok: false }` at its edge. */
class ConfigError extends Error {}

const fail = (key: string, problem: string): never => {
  throw new ConfigError(`config: ${key}: ${problem}`)
}

const KNOWN_KEYS: Record<string, readonly string[]> = {
  '': [
    'deviceId', 'broker', 'stateDir', 'factoryBootstrap', 'topicPrefix', 'maxPacketSize', 'userPin', 'networkId',
    'devInfo', 'acceptDetectionFrom', 'logLevel', 'session', 'location',
  ],
  broker: ['url', 'username', 'password', 'ca', 'cert', 'key', 'clientId', 'keepaliveSeconds'],
  devInfo: ['man', 'mod', 'lang', 'devTyp', 'fwV', 'swV', 'hwV', 'oem'],
  session: ['timeoutSeconds', 'retries', 'retryBackoffSeconds', 'maxBackoffSeconds'],
  location: ['pollSeconds', 'enabled', 'sourceFile'],
}

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** Unknown keys are reported before anything else, so a typo is named rather than the key it hid. */
function checkKnownKeys(raw: Json): void {
  for (const [section, known] of Object.entries(KNOWN_KEYS)) {
    const object = section === '' ? raw : raw[section]
    if (!isObject(object)) continue
    for (const key of Object.keys(object)) {
      if (!known.includes(key)) throw new ConfigError(`config: unknown key "${section ? `${section}.` : ''}${key}"`)
    }
  }
}

function section(raw: Json, key: string, required: boolean): Json {
  const value = raw[key]
  if (value === undefined) return required ? fail(key, 'required') : {}
  return isObject(value) ? value : fail(key, 'must be an object')
}

// Values are never echoed in messages: some of them are secrets.
function text(object: Json, key: string, path: string, required: true): string
function text(object: Json, key: string, path: string, required: false): string | undefined
function text(object: Json, key: string, path: string, required: boolean): string | undefined {
  const value = object[key]
  if (value === undefined) return required ? fail(path, 'required') : undefined
  if (typeof value !== 'string' || value === '') return fail(path, 'must be a non-empty string')
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) return fail(path, 'must not contain control characters')
  return value
}

function integer(object: Json, key: string, path: string, fallback: number, min: number, max: number): number {
  const value = object[key]
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    return fail(path, `must be an integer from ${min} to ${max}`)
  }
  return value
}

function oneOf<T extends string>(object: Json, key: string, choices: readonly T[], fallback: T): T {
  const value = object[key]
  if (value === undefined) return fallback
  return choices.includes(value as T) ? (value as T) : fail(key, `must be one of ${choices.map((c) => `"${c}"`).join(', ')}`)
}

function fromEnv(env: Record<string, string | undefined>, name: string): string | undefined {
  const value = env[name]
  return value === undefined || value === '' ? undefined : value
}

function brokerUrl(value: string): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return fail('broker.url', 'must be an mqtt:// or mqtts:// URL')
  }
  if ((url.protocol !== 'mqtt:' && url.protocol !== 'mqtts:') || url.hostname === '') {
    return fail('broker.url', 'must be an mqtt:// or mqtts:// URL')
  }
  // Credentials in the URL would end up wherever the URL is logged.
  if (url.username !== '' || url.password !== '') {
    return fail('broker.url', 'must not hold credentials (use broker.username and broker.password)')
  }
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
    return fail('broker.url', 'must not have a path, query or fragment')
  }
  return value
}

function deviceId(raw: Json): string {
  const id = text(raw, 'deviceId', 'deviceId', true)
  if (/\s/.test(id)) fail('deviceId', 'must not contain white space')
  return id
}

function topicPrefix(raw: Json): string {
  const prefix = text(raw, 'topicPrefix', 'topicPrefix', false) ?? CONFIG_DEFAULTS.topicPrefix
  // MQTT 5, 4.7: wildcards are not allowed in a topic name; empty levels would make a different topic.
  if (/[+#]/.test(prefix) || prefix.split('/').some((level) => level === '')) {
    fail('topicPrefix', 'must be topic levels without "+", "#" or empty levels')
  }
  return prefix
}

function clientId(broker: Json, id: string): string {
  const explicit = text(broker, 'clientId', 'broker.clientId', false)
  if (explicit !== undefined && Buffer.byteLength(explicit) > 65535) fail('broker.clientId', 'must be at most 65535 bytes')
  return explicit ?? CONFIG_DEFAULTS.clientIdPrefix + id
}

function path(object: Json, key: string, name: string, required: boolean, baseDir?: string): string | undefined {
  const value = required ? text(object, key, name, true) : text(object, key, name, false)
  if (value === undefined || baseDir === undefined || isAbsolute(value)) return value
  return resolve(baseDir, value)
}

function parseBroker(raw: Json, env: Record<string, string | undefined>, id: string, baseDir?: string): BrokerConfig {
  const broker = section(raw, 'broker', true)
  const url = brokerUrl(text(broker, 'url', 'broker.url', true))
  const cert = path(broker, 'cert', 'broker.cert', false, baseDir)
  const key = path(broker, 'key', 'broker.key', false, baseDir)
  if (cert !== undefined && key === undefined) fail('broker.key', 'required with broker.cert')
  if (key !== undefined && cert === undefined) fail('broker.cert', 'required with broker.key')
  return {
    url,
    ...optional('username', text(broker, 'username', 'broker.username', false)),
    // MQTT 5, 3.1.2.9: a password without a user name is allowed.
    ...optional('password', fromEnv(env, SECRET_ENV.brokerPassword) ?? text(broker, 'password', 'broker.password', false)),
    ...optional('ca', path(broker, 'ca', 'broker.ca', false, baseDir)),
    ...optional('cert', cert),
    ...optional('key', key),
    clientId: clientId(broker, id),
    keepaliveSeconds: integer(broker, 'keepaliveSeconds', 'broker.keepaliveSeconds', CONFIG_DEFAULTS.keepaliveSeconds, 1, 65535),
  }
}

function optional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: string }
}

function parseDevInfo(raw: Json): DevInfoConfig {
  const devInfo = section(raw, 'devInfo', false)
  const defaults = CONFIG_DEFAULTS.devInfo
  const field = (key: string) => text(devInfo, key, `devInfo.${key}`, false)
  return {
    man: field('man') ?? defaults.man,
    mod: field('mod') ?? defaults.mod,
    lang: field('lang') ?? defaults.lang,
    devTyp: field('devTyp') ?? defaults.devTyp,
    ...optional('fwV', field('fwV')),
    ...optional('swV', field('swV')),
    ...optional('hwV', field('hwV')),
    ...optional('oem', field('oem')),
  }
}

function parseSession(raw: Json): SessionConfig {
  const session = section(raw, 'session', false)
  const defaults = CONFIG_DEFAULTS.session
  const seconds = (key: keyof SessionConfig, min: number, max: number) =>
    integer(session, key, `session.${key}`, defaults[key], min, max)
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

function parseLocation(raw: Json, baseDir?: string): LocationConfig {
  const location = section(raw, 'location', false)
  const enabled = location.enabled ?? CONFIG_DEFAULTS.location.enabled
  if (typeof enabled !== 'boolean') fail('location.enabled', 'must be true or false')
  return {
    pollSeconds: integer(location, 'pollSeconds', 'location.pollSeconds', CONFIG_DEFAULTS.location.pollSeconds, 1, 86400),
    enabled: enabled as boolean,
    ...optional('sourceFile', path(location, 'sourceFile', 'location.sourceFile', false, baseDir)),
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner)
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
    const id = deviceId(raw)
    const broker = parseBroker(raw, env, id, options.baseDir)
    const config: AgentConfig = {
      deviceId: id,
      broker,
      stateDir: path(raw, 'stateDir', 'stateDir', true, options.baseDir) as string,
      factoryBootstrap: path(raw, 'factoryBootstrap', 'factoryBootstrap', true, options.baseDir) as string,
      topicPrefix: topicPrefix(raw),
      maxPacketSize: integer(raw, 'maxPacketSize', 'maxPacketSize', CONFIG_DEFAULTS.maxPacketSize,
        CONFIG_DEFAULTS.minPacketSize, CONFIG_DEFAULTS.maxMaxPacketSize),
      ...optional('userPin', fromEnv(env, SECRET_ENV.userPin) ?? text(raw, 'userPin', 'userPin', false)),
      ...optional('networkId', fromEnv(env, SECRET_ENV.networkId) ?? text(raw, 'networkId', 'networkId', false)),
      devInfo: parseDevInfo(raw),
      acceptDetectionFrom: oneOf(raw, 'acceptDetectionFrom', ['bootstrapped', 'any'], CONFIG_DEFAULTS.acceptDetectionFrom),
      logLevel: oneOf(raw, 'logLevel', ['debug', 'info', 'warn', 'error'], CONFIG_DEFAULTS.logLevel),
      session: parseSession(raw),
      location: parseLocation(raw, options.baseDir),
    }
    return { ok: true, config: deepFreeze(config) }
  } catch (error) {
    if (error instanceof ConfigError) return { ok: false, error: error.message }
    throw error
  }
}

/** 1-based line and column of a character offset. */
function lineAndColumn(source: string, offset: number): { line: number; column: number } {
  const before = source.slice(0, offset)
  const lastBreak = before.lastIndexOf('\n')
  return { line: before.split('\n').length, column: offset - lastBreak }
}

/**
 * The position of a JSON syntax error. The engine's own message is not passed on: newer engines quote the
 * text around the error, and that text may be a secret.
 */
function syntaxErrorPosition(source: string, error: unknown): { line: number; column: number } {
  const message = error instanceof Error ? error.message : ''
  const lineColumn = /line (\d+) column (\d+)/.exec(message)
  if (lineColumn) return { line: Number(lineColumn[1]), column: Number(lineColumn[2]) }
  const position = /position (\d+)/.exec(message)
  return lineAndColumn(source, position ? Number(position[1]) : source.length)
}

/**
 * Reads and checks a configuration file. Relative paths in it are taken relative to the file's directory, so
 * the agent behaves the same whatever directory it is started from.
 */
export async function loadConfigFile(file: string, env: Record<string, string | undefined>): Promise<ConfigResult> {
  let source: string
  try {
    source = await readFile(file, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error'
    return { ok: false, error: `config: ${file}: cannot read (${code})` }
  }
  source = source.replace(/^\uFEFF/, '')
  let raw: unknown
  try {
    raw = JSON.parse(source)
  } catch (error) {
    const { line, column } = syntaxErrorPosition(source, error)
    return { ok: false, error: `config: ${file}: invalid JSON at line ${line}, column ${column}` }
  }
  return parseConfig(raw, env, { baseDir: dirname(resolve(file)) })
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
      const code = (error as NodeJS.ErrnoException).code ?? 'error'
      return { ok: false, error: `config: broker.${key}: cannot read ${file} (${code})` }
    }
  }
  return { ok: true, tls }
}
