/**
 * The real agent as a child process (`node dist/gwmo-agent.js --config <dir>/config.json`), the way Anjay's
 * integration tests run the real client binary against scripted servers. The configuration and the fixtures
 * live in a temporary directory; stdout is read as the agent's JSON log lines, which tests wait on instead of
 * sleeping. A restart runs a new process on the same directory (the same stateDir).
 *
 * `npm test` builds the bundle before tap runs; a single file needs `npm run build` first.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt, { type MqttClient } from 'mqtt'
import { Waiters } from '../peers/waiters.ts'
import { STATUS_OBSERVER, usernameFor } from './broker-world.ts'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
/** `GWMO_TEST_BUNDLE` runs the tests against another build (an older one, to see a regression test fail on it). */
export const AGENT_BUNDLE = process.env.GWMO_TEST_BUNDLE ?? join(ROOT, 'dist', 'gwmo-agent.js')
export const AGENT_FIXTURES = join(ROOT, 'test', 'fixtures', 'agent')

/** What `factory-bootstrap.xml` configures: one DM Server account with DIGEST credentials both ways. */
export const FACTORY = Object.freeze({
  deviceId: 'mac:01-ab-34-ef-69-0c',
  serverId: 'http://dms.example.com',
  /** CLCRED: the device's credentials toward the server. */
  clientName: 'device-user',
  clientPassword: 'device-secret',
  /** SRVCRED: the server's credentials toward the device. */
  serverName: 'dms-user',
  serverPassword: 'dms-secret',
})

/**
 * The DM Server peer options that match `FACTORY` (both nonces start as the factory's empty nonce). Given the
 * test, the peer's traffic is recorded and shown when the test fails.
 */
export function factoryServer(brokerUrl: string, t?: TeardownHost) {
  return {
    ...(t !== undefined && { onTraffic: recordTraffic(t, FACTORY.serverId) }),
    brokerUrl,
    serverId: FACTORY.serverId,
    deviceId: FACTORY.deviceId,
    serverName: FACTORY.serverName,
    serverPassword: FACTORY.serverPassword,
    clientName: FACTORY.clientName,
    clientPassword: FACTORY.clientPassword,
  }
}

export type LogLine = Record<string, unknown> & { level: string; msg: string }
export type LogPredicate = (line: LogLine) => boolean

export interface AgentProcessOptions {
  brokerUrl: string
  deviceId?: string
  /** Fixture file names (under `test/fixtures/agent/`) or absolute paths copied into the directory. */
  factoryBootstrap?: string
  /** More configuration keys; `session`, `devInfo`, `location` and `broker` are merged one level deep. */
  config?: Record<string, unknown>
  logLevel?: 'debug' | 'info' | 'warn' | 'error'
  env?: Record<string, string>
  /** Reuse this directory (a restart); a fresh temporary one otherwise. */
  dir?: string
  /** The program that runs the bundle: this Node unless told (`node_modules/.bin/bun`). */
  runtime?: string
  /** A script run in the bundle's place with the same arguments (a program that embeds the agent). */
  script?: string
}

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
  /** Milliseconds from the signal (stop/kill) to the exit; from the start for `waitForExit`. */
  ms: number
}

/** Test defaults: no location polling (a test turns it on), short session timers so that failures show fast. */
const TEST_DEFAULTS = {
  session: { timeoutSeconds: 5, retries: 3, retryBackoffSeconds: 1, maxBackoffSeconds: 4 },
  location: { enabled: false },
}

function mergeConfig(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base }
  for (const [key, value] of Object.entries(extra)) {
    const current = out[key]
    const bothObjects = typeof value === 'object' && value !== null && !Array.isArray(value) &&
      typeof current === 'object' && current !== null && !Array.isArray(current)
    out[key] = bothObjects ? { ...(current as object), ...(value as object) } : value
  }
  return out
}

/** Writes `<dir>/config.json` (and copies the factory document in); returns the configuration written. */
export function writeAgentConfig(dir: string, options: AgentProcessOptions): Record<string, unknown> {
  const fixture = options.factoryBootstrap ?? 'factory-bootstrap.xml'
  const source = fixture.startsWith('/') ? fixture : join(AGENT_FIXTURES, fixture)
  const target = join(dir, fixture.endsWith('.wbxml') ? 'factory.wbxml' : 'factory.xml')
  if (existsSync(source)) copyFileSync(source, target)
  const deviceId = String((options.config?.deviceId as string | undefined) ?? options.deviceId ?? FACTORY.deviceId)
  const config = mergeConfig(
    {
      deviceId,
      // The test broker's ACL knows the device by its user name (binding.md §6).
      broker: { url: options.brokerUrl, username: usernameFor(deviceId) },
      stateDir: join(dir, 'state'),
      factoryBootstrap: target,
      ...TEST_DEFAULTS,
    },
    options.config ?? {},
  )
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n')
  return config
}

/** Agents still running in this test process (one `exit` listener for all of them). */
const running = new Set<ChildProcess>()
const killRunning = () => {
  for (const child of running) child.kill('SIGKILL')
}

export class AgentProcess {
  readonly logs: LogLine[] = []
  /** stdout lines that were not JSON (there should be none once running). */
  readonly otherStdout: string[] = []
  stdout = ''
  stderr = ''
  readonly exited: Promise<Exit>
  readonly #child: ChildProcess
  readonly #startedAt = Date.now()
  readonly #waiters = new Waiters()
  #partial = ''
  #exit: Exit | undefined

  private constructor(
    readonly dir: string,
    readonly options: AgentProcessOptions,
    readonly config: Record<string, unknown>,
    args: string[],
  ) {
    this.#child = spawn(options.runtime ?? process.execPath, [options.script ?? AGENT_BUNDLE, ...args], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.#child.stdout?.setEncoding('utf8').on('data', (chunk: string) => this.#onStdout(chunk))
    this.#child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk
      this.#changed()
    })
    this.exited = new Promise((resolve) => {
      this.#child.once('exit', (code, signal) => {
        this.#exit = { code, signal, ms: Date.now() - this.#startedAt }
        this.#changed()
        resolve(this.#exit)
      })
    })
    // An agent must not outlive the test process, even when a test forgets its teardown.
    running.add(this.#child)
    if (process.listeners('exit').indexOf(killRunning) < 0) process.on('exit', killRunning)
    void this.exited.then(() => running.delete(this.#child))
  }

  /** A fresh temporary directory for an agent (to put files there before it starts). */
  static makeDir(): string {
    return mkdtempSync(join(tmpdir(), 'gwmo-agent-'))
  }

  /** Writes the configuration into a temporary directory (or `options.dir`) and starts the agent on it. */
  static start(options: AgentProcessOptions): AgentProcess {
    const dir = options.dir ?? AgentProcess.makeDir()
    const config = writeAgentConfig(dir, options)
    return new AgentProcess(dir, options, config, ['--config', join(dir, 'config.json'), '--log-level', options.logLevel ?? 'debug'])
  }

  /** Runs the bundle with raw arguments in `dir` (the command-line tests); wait on `exited`. */
  static run(args: string[], options: { dir: string; env?: Record<string, string> }): AgentProcess {
    return new AgentProcess(options.dir, { brokerUrl: '', dir: options.dir, ...(options.env && { env: options.env }) }, {}, args)
  }

  get stateDir(): string {
    return String(this.config.stateDir ?? join(this.dir, 'state'))
  }

  get pid(): number | undefined {
    return this.#child.pid
  }

  get running(): boolean {
    return this.#exit === undefined
  }

  /** A new agent on the same directory and stateDir, with the same options and any given overrides. */
  restart(overrides: Partial<AgentProcessOptions> = {}): AgentProcess {
    if (this.running) throw new Error('restart: the agent is still running; stop() or kill() it first')
    return AgentProcess.start({ ...this.options, ...overrides, dir: this.dir })
  }

  /** The first log line (already seen or to come) matching `predicate`. */
  waitForLog(predicate: LogPredicate, timeoutMs = 15_000, what = 'log line'): Promise<LogLine> {
    return this.#waitFor(() => this.logs.find(predicate), timeoutMs, what)
  }

  /** The first log line after the `from`-th one that matches. */
  waitForLogAfter(from: number, predicate: LogPredicate, timeoutMs = 15_000, what = 'log line'): Promise<LogLine> {
    return this.#waitFor(() => this.logs.slice(from).find(predicate), timeoutMs, what)
  }

  /** The agent has finished starting (it may still be connecting to its broker). */
  async ready(timeoutMs = 15_000): Promise<void> {
    await this.waitForLog((l) => l.msg === 'started', timeoutMs, '"started"')
  }

  /** The agent is subscribed and its retained `online` is on the broker (the `online` debug line). */
  async online(timeoutMs = 15_000, after = 0): Promise<void> {
    await this.waitForLogAfter(after, (l) => l.msg === 'online', timeoutMs, '"online"')
  }

  waitForExit(timeoutMs = 15_000): Promise<Exit> {
    return this.#waitFor(() => this.#exit, timeoutMs, 'exit')
  }

  /** SIGTERM; resolves with the exit and how long it took from the signal. */
  async stop(timeoutMs = 10_000): Promise<Exit> {
    return this.#signal('SIGTERM', timeoutMs)
  }

  /** SIGKILL: no goodbye, no flush. */
  async kill(timeoutMs = 10_000): Promise<Exit> {
    return this.#signal('SIGKILL', timeoutMs)
  }

  /** Kills the agent if it still runs (teardown). */
  async dispose(): Promise<void> {
    if (this.running) await this.#signal('SIGKILL', 10_000).catch(() => undefined)
  }

  /** Removes the temporary directory (after the agent has exited). */
  async remove(): Promise<void> {
    await this.dispose()
    rmSync(this.dir, { recursive: true, force: true })
  }

  /** The last `lines` lines of stdout and all of stderr. */
  tail(lines: number): string {
    return `${this.stdout.split('\n').slice(-lines).join('\n')}${this.stderr === '' ? '' : `\n--- stderr ---\n${this.stderr}`}`
  }

  /** Everything the agent wrote so far, for failure messages. */
  transcript(): string {
    return `--- stdout ---\n${this.stdout}\n--- stderr ---\n${this.stderr}`
  }

  async #signal(signal: NodeJS.Signals, timeoutMs: number): Promise<Exit> {
    if (this.#exit !== undefined) return this.#exit
    const sentAt = Date.now()
    this.#child.kill(signal)
    const exit = await this.#waitFor(() => this.#exit, timeoutMs, `exit after ${signal}`)
    return { ...exit, ms: Date.now() - sentAt }
  }

  #onStdout(chunk: string): void {
    this.stdout += chunk
    const lines = (this.#partial + chunk).split('\n')
    this.#partial = lines.pop() ?? ''
    for (const line of lines) {
      if (line.trim() === '') continue
      try {
        const parsed = JSON.parse(line) as LogLine
        if (typeof parsed === 'object' && parsed !== null && typeof parsed.msg === 'string') this.logs.push(parsed)
        else this.otherStdout.push(line)
      } catch {
        this.otherStdout.push(line)
      }
    }
    this.#changed()
  }

  #changed(): void {
    this.#waiters.notify()
  }

  #waitFor<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return this.#waiters.waitFor(probe, timeoutMs, `${what} from the agent`, () => {
      const tail = this.stdout.split('\n').slice(-25).join('\n')
      return `${this.#exit ? ` (exited ${this.#exit.code ?? this.#exit.signal})` : ''}\n${tail}\n${this.stderr}`
    })
  }

}

/**
 * The device's last Status for our command on `uri` in a session: after a challenge the peer sends its commands
 * again, and the first answer (401 to each) is not the one that counts.
 */
export function finalStatus(session: { statuses: { target?: string; code: string }[] }, uri: string): string | undefined {
  return session.statuses.filter((s) => s.target === uri).at(-1)?.code
}

/** A peer's `onTraffic` that keeps every line, shown in the TAP stream when the test fails. */
export function recordTraffic(t: TeardownHost, who: string): (event: { direction: 'in' | 'out'; topic: string; summary: string }) => void {
  const started = Date.now()
  const lines: string[] = []
  t.teardown(() => {
    if (!t.passing() && lines.length > 0) t.comment(`${who} traffic:\n${lines.join('\n')}`)
  })
  return (event) => lines.push(`+${Date.now() - started}ms ${event.direction} ${event.summary}`)
}

/** The little of a tap test that `cleanUpAgent` needs. */
export interface TeardownHost {
  teardown(fn: () => unknown): void
  passing(): boolean
  comment(...message: unknown[]): void
}

/**
 * Registers the agent's teardown: when the test failed, the end of the agent's output goes into the TAP stream
 * (what the agent said is most of a diagnosis); then the agent is killed if still running and its directory
 * removed. Returns the agent, so that `const agent = cleanUpAgent(t, AgentProcess.start(…))` reads well.
 */
export function cleanUpAgent(t: TeardownHost, agent: AgentProcess): AgentProcess {
  t.teardown(async () => {
    if (!t.passing()) t.comment(`agent ${agent.pid ?? '?'} in ${agent.dir}:\n${agent.tail(60)}`)
    await agent.remove()
  })
  return agent
}

/** A plain MQTT 5 client that watches the device's retained status topic and records every value. */
export class StatusWatcher {
  readonly values: string[] = []
  readonly #waiters = new Waiters()

  private constructor(readonly topic: string, private readonly client: MqttClient) {
    client.on('message', (received, payload) => {
      if (received !== topic) return
      this.values.push(payload.toString('utf8'))
      this.#waiters.notify()
    })
  }

  static async start(brokerUrl: string, deviceId = FACTORY.deviceId, prefix = 'omadm/v1'): Promise<StatusWatcher> {
    const topic = `${prefix}/${encodeURIComponent(deviceId)}/status`
    const client = mqtt.connect(brokerUrl, {
      protocolVersion: 5,
      clientId: `status-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
      username: STATUS_OBSERVER,
      reconnectPeriod: 500,
    })
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve())
      client.once('error', reject)
    })
    const watcher = new StatusWatcher(topic, client)
    // Subscribe again after a broker restart (the broker keeps no session for this client).
    client.on('connect', () => client.subscribe(topic, { qos: 1 }))
    await new Promise<void>((resolve, reject) => client.subscribe(topic, { qos: 1 }, (error) => (error ? reject(error) : resolve())))
    return watcher
  }

  /** The n-th value received (0-based), waiting for it. */
  nth(index: number, timeoutMs = 15_000): Promise<string> {
    return this.#waitFor(() => this.values[index], timeoutMs, `status value #${index}`)
  }

  /** The first value equal to `value` received after the first `from` values. */
  waitFor(value: string, from = 0, timeoutMs = 15_000): Promise<number> {
    return this.#waitFor(() => {
      const index = this.values.indexOf(value, from)
      return index < 0 ? undefined : index
    }, timeoutMs, `status "${value}"`)
  }

  /** A fresh subscription's view: the retained value now on the broker. */
  static async retained(brokerUrl: string, deviceId = FACTORY.deviceId, timeoutMs = 5_000): Promise<string | undefined> {
    const watcher = await StatusWatcher.start(brokerUrl, deviceId)
    try {
      return await watcher.nth(0, timeoutMs).catch(() => undefined)
    } finally {
      await watcher.stop()
    }
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.client.end(true, {}, () => resolve()))
  }

  #waitFor<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return this.#waiters.waitFor(probe, timeoutMs, `${what} on ${this.topic}`, () => ` (seen: ${JSON.stringify(this.values)})`)
  }

}
