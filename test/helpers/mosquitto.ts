/**
 * A private Debian `mosquitto` for integration tests: its own configuration, port and log in a temporary
 * directory, optionally a TLS listener with a CA made by `openssl` for the test. It runs the least-privilege
 * ACL the project ships (binding.md §6, `broker-world.ts`) unless a test asks for an open broker. Never
 * skipped: without the broker the tests fail and say how to install it.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { aclFileFor, TEST_WORLD, type AclWorld } from './broker-world.ts'
import { freePort, waitForPort } from './free-port.ts'

const MOSQUITTO = '/usr/sbin/mosquitto'
const OPENSSL = '/usr/bin/openssl'
const START_TIMEOUT_MS = 10_000
const STOP_TIMEOUT_MS = 5_000

export interface MosquittoOptions {
  /** Adds an `mqtts://` listener with a test CA and a server certificate for `localhost` and `127.0.0.1`. */
  tls?: { requireClientCertificate?: boolean }
  /** Keeps sessions and queued messages across `restart()` (saved when the broker stops cleanly). */
  persistence?: boolean
  /** More `mosquitto.conf` lines for the whole broker, e.g. `max_queued_messages 0` for a simulated fleet. */
  settings?: string[]
  /** The devices and parties the ACL admits; `TEST_WORLD` unless given. */
  world?: AclWorld
  /** No ACL: every client reads and publishes every topic, as one with full access to the broker would. */
  open?: boolean
}

export interface TlsListener {
  /** `mqtts://localhost:<port>` (the certificate names `localhost` and `127.0.0.1`). */
  url: string
  port: number
  /** PEM of the test CA, of a client certificate it signed, and of that certificate's key. */
  ca: string
  clientCert: string
  clientKey: string
}

export interface Mosquitto {
  url: string
  port: number
  tls?: TlsListener
  /** The broker's log so far (for failure messages). */
  log(): string
  stop(): Promise<void>
  /** Stops the broker, runs `whileDown` if given, and starts it again on the same ports. */
  restart(whileDown?: () => unknown): Promise<void>
  /** SIGKILL, no goodbye to anyone. */
  kill(): void
}

function requireExecutable(path: string, install: string): void {
  try {
    accessSync(path, constants.X_OK)
  } catch {
    throw new Error(`${path.split('/').pop()} not found: apt-get install ${install}`)
  }
}

/** A test CA and, signed by it, `server.pem` (for `localhost` and `127.0.0.1`) and `client.pem`, with their keys, in `dir`. */
export function makeCertificates(dir: string): void {
  requireExecutable(OPENSSL, 'openssl')
  const openssl = (...args: string[]) => execFileSync(OPENSSL, args, { cwd: dir, stdio: 'pipe' })
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  writeFileSync(join(dir, 'ca.cnf'), [
    '[req]', 'distinguished_name = dn', 'prompt = no', '[dn]', 'CN = gwmo-agent test CA',
    '[v3_ca]', 'basicConstraints = critical,CA:TRUE', 'keyUsage = critical,keyCertSign,cRLSign',
    'subjectKeyIdentifier = hash', '',
  ].join('\n'))
  openssl('req', '-x509', '-config', 'ca.cnf', '-extensions', 'v3_ca', ...ecKey, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2')
  const leaf = (name: string, extensions: string[], serial: string) => {
    writeFileSync(join(dir, `${name}.ext`), ['basicConstraints = CA:FALSE', ...extensions, ''].join('\n'))
    openssl('req', '-new', ...ecKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name === 'server' ? 'localhost' : 'gwmo-agent test device'}`)
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', serial,
      '-days', '2', '-out', `${name}.pem`, '-extfile', `${name}.ext`)
  }
  leaf('server', ['subjectAltName = DNS:localhost,IP:127.0.0.1', 'extendedKeyUsage = serverAuth'], '2')
  leaf('client', ['extendedKeyUsage = clientAuth'], '3')
}

export async function startMosquitto(options: MosquittoOptions = {}): Promise<Mosquitto> {
  requireExecutable(MOSQUITTO, 'mosquitto')
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-mosquitto-'))
  const logFile = join(dir, 'mosquitto.log')
  const port = await freePort()
  const tlsPort = options.tls ? await freePort() : undefined
  if (options.tls) makeCertificates(dir)

  if (options.open && options.world) throw new Error('startMosquitto: an open broker has no world')
  const aclFile = join(dir, 'acl')
  if (!options.open) writeFileSync(aclFile, aclFileFor(options.world ?? TEST_WORLD))

  const lines = [
    // Started as root, mosquitto would switch to its own user and lose access to this directory.
    `user ${userInfo().username}`,
    'per_listener_settings false',
    // No password file: a client names itself with its user name, which the ACL goes by.
    'allow_anonymous true',
    ...(options.open ? [] : [`acl_file ${aclFile}`]),
    'set_tcp_nodelay true',
    `persistence ${options.persistence ? 'true' : 'false'}`,
    ...(options.persistence ? [`persistence_location ${dir}/`] : []),
    `log_dest file ${logFile}`,
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    'connection_messages true',
    ...(options.settings ?? []),
    `listener ${port} 127.0.0.1`,
  ]
  if (tlsPort !== undefined) {
    lines.push(
      `listener ${tlsPort} 127.0.0.1`,
      `cafile ${join(dir, 'ca.pem')}`,
      `certfile ${join(dir, 'server.pem')}`,
      `keyfile ${join(dir, 'server.key')}`,
      `require_certificate ${options.tls?.requireClientCertificate ? 'true' : 'false'}`,
    )
  }
  const confFile = join(dir, 'mosquitto.conf')
  writeFileSync(confFile, lines.join('\n') + '\n')

  let child: ChildProcess | undefined
  const readLog = () => {
    try {
      return readFileSync(logFile, 'utf8')
    } catch {
      return ''
    }
  }
  // A broker must not outlive the test process, even when a test forgets its teardown.
  const killOnExit = () => child?.kill('SIGKILL')
  process.once('exit', killOnExit)

  const launch = async () => {
    const started = spawn(MOSQUITTO, ['-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] })
    child = started
    let stderr = ''
    started.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    let exited: string | undefined
    started.once('exit', (code, signal) => {
      exited = `mosquitto exited (${signal ?? code}) while starting: ${stderr.trim()} ${readLog().trim()}`
    })
    const deadline = Date.now() + START_TIMEOUT_MS
    const gaveUp = () => exited ?? (Date.now() > deadline ? `mosquitto did not listen on ${port} within ${START_TIMEOUT_MS} ms` : undefined)
    await waitForPort(port, gaveUp)
    if (tlsPort !== undefined) await waitForPort(tlsPort, gaveUp)
  }

  const halt = async () => {
    const running = child
    child = undefined
    if (!running || running.exitCode !== null || running.signalCode !== null) return
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => running.kill('SIGKILL'), STOP_TIMEOUT_MS)
      running.once('exit', () => {
        clearTimeout(force)
        resolve()
      })
      running.kill('SIGTERM')
    })
  }

  await launch()
  const tls: TlsListener | undefined = tlsPort === undefined ? undefined : {
    url: `mqtts://localhost:${tlsPort}`,
    port: tlsPort,
    ca: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    clientCert: readFileSync(join(dir, 'client.pem'), 'utf8'),
    clientKey: readFileSync(join(dir, 'client.key'), 'utf8'),
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    ...(tls && { tls }),
    log: readLog,
    async stop() {
      await halt()
      process.removeListener('exit', killOnExit)
      rmSync(dir, { recursive: true, force: true })
    },
    async restart(whileDown) {
      await halt()
      await whileDown?.()
      await launch()
    },
    kill() {
      child?.kill('SIGKILL')
    },
  }
}
