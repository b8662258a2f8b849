/**
 * What the FUMO tests share: a recording update module, the download server, and a DM Server's FUMO commands
 * against the real agent (binding.md §9).
 */
import { createHash, randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { AgentProcess, cleanUpAgent, FACTORY, factoryServer } from './agent-process.ts'
import { startDmServer, type DmServer } from '../peers/dm-server.ts'
import type { GenericAlert, PartySession } from '../peers/session-record.ts'
import { exec, get, replace, type OutCommand } from '../peers/syncml.ts'

export const ROOT = './FUMO/1'
export const PACKAGE = randomBytes(200 * 1024)
export const SHA256 = createHash('sha256').update(PACKAGE).digest('hex')
export const TYPE = {
  Download: 'org.openmobilealliance.dm.firmwareupdate.download',
  Update: 'org.openmobilealliance.dm.firmwareupdate.update',
  DownloadAndUpdate: 'org.openmobilealliance.dm.firmwareupdate.downloadandupdate',
}

/** The test update module: records each call, answers with the exit code (and stdout) its files say. */
export function makeModule(): { dir: string; path: string; calls(): string[]; set(verb: string, what: { exit?: number; out?: string; sleep?: number }): void; reset(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-fumo-module-'))
  const path = join(dir, 'module')
  writeFileSync(path, [
    '#!/bin/sh',
    'd=$(dirname "$0")',
    'echo "$1 $(sha256sum < "$2" | cut -c1-64)" >> "$d/calls"',
    'case "$1" in check|install|verify) ;; *) exit 0 ;; esac',
    '[ -f "$d/$1.sleep" ] && sleep "$(cat "$d/$1.sleep")"',
    '[ -f "$d/$1.out" ] && cat "$d/$1.out"',
    'exit "$(cat "$d/$1.exit" 2>/dev/null || echo 0)"',
    '',
  ].join('\n'))
  chmodSync(path, 0o755)
  const files = (verb: string) => ['exit', 'out', 'sleep'].map((k) => join(dir, `${verb}.${k}`))
  return {
    dir,
    path,
    calls: () => (existsSync(join(dir, 'calls')) ? readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n') : []),
    set(verb, what) {
      for (const f of files(verb)) rmSync(f, { force: true })
      if (what.exit !== undefined) writeFileSync(join(dir, `${verb}.exit`), String(what.exit))
      if (what.out !== undefined) writeFileSync(join(dir, `${verb}.out`), what.out)
      if (what.sleep !== undefined) writeFileSync(join(dir, `${verb}.sleep`), String(what.sleep))
    },
    reset() {
      for (const verb of ['check', 'install', 'verify']) this.set(verb, {})
      rmSync(join(dir, 'calls'), { force: true })
    },
  }
}

export interface PackageServer {
  url(path: string): string
  requests: Array<{ path: string; range?: string }>
}

/** The download server: `/pkg` whole, `/slow` in small pieces, `/drop` cut each time, `/fail` 500, `/missing` 404, `/big` too large. */
export async function startPackageServer(t: Test): Promise<PackageServer> {
  const requests: PackageServer['requests'] = []
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    requests.push({ path, ...(req.headers.range !== undefined && { range: req.headers.range }) })
    const etag = '"v1"'
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '')
    const start = range && req.headers['if-range'] === etag ? Number(range[1]) : 0
    const body = PACKAGE.subarray(start)
    const head = (status: number) =>
      res.writeHead(status, { etag, 'content-length': body.length, ...(start > 0 && { 'content-range': `bytes ${start}-${PACKAGE.length - 1}/${PACKAGE.length}` }) })
    switch (path) {
      case '/pkg':
        head(start > 0 ? 206 : 200)
        return void res.end(body)
      case '/slow': {
        head(start > 0 ? 206 : 200)
        let at = 0
        const timer = setInterval(() => {
          if (res.destroyed) return clearInterval(timer)
          const piece = body.subarray(at, at + 2048)
          at += piece.length
          if (piece.length === 0) {
            clearInterval(timer)
            return void res.end()
          }
          res.write(piece)
        }, 150)
        return
      }
      case '/drop':
        head(start > 0 ? 206 : 200)
        return void res.write(body.subarray(0, 1000), () => res.socket?.destroy())
      case '/fail':
        res.writeHead(500)
        return void res.end()
      case '/big':
        res.writeHead(200, { 'content-length': 4 * 1024 * 1024 })
        return void res.end()
      default:
        res.writeHead(404)
        return void res.end()
    }
  }
  const server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  return { url: (path) => `http://127.0.0.1:${port}${path}`, requests }
}

let correlators = 0

/**
 * Until no session runs on the agent: a push that crosses a session the device opens (to deliver a result) has
 * its credentials computed against a nonce that session is about to change, which the peer does not recover from.
 */
export async function idle(agent: AgentProcess): Promise<void> {
  for (let quiet = 0; quiet < 3; ) {
    const open = new Set<unknown>()
    for (const l of agent.logs) {
      if (l.msg === 'session started') open.add(l.sessionId)
      else if (l.msg === 'session ended' || l.msg === 'session failed') open.delete(l.sessionId)
    }
    quiet = open.size === 0 ? quiet + 1 : 0
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** Pushes a session that sets the package's URL (and SHA-256) and Execs `node`; its statuses and the correlator used. */
export async function startOperation(server: DmServer, agent: AgentProcess, node: keyof typeof TYPE, setup: OutCommand[]): Promise<{ session: PartySession; correlator: string; execCode?: string }> {
  const correlator = `corr-${++correlators}`
  const command = exec(`${ROOT}/${node}`, undefined, correlator)
  await idle(agent)
  const pushed = await server.pushSession([...setup, command])
  const session = await server.waitForSession((s) => s === pushed && s.closed, 20_000)
  await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === session.sessionId, 20_000)
  return { session, correlator, execCode: session.statuses.filter((s) => s.command === command).at(-1)?.code }
}

export function alertsFor(server: DmServer, correlator: string): GenericAlert[] {
  return server.sessions.flatMap((s) => s.genericAlerts).filter((a) => a.correlator === correlator)
}

/** The result alert; once the session that carried it has ended on both sides (the next push then finds the device idle). */
export async function waitForResult(server: DmServer, agent: AgentProcess, correlator: string, timeoutMs = 30_000): Promise<GenericAlert> {
  const alert = await server.waitFor(() => alertsFor(server, correlator)[0], timeoutMs, `FUMO result alert ${correlator}`)
  const session = await server.waitForSession((s) => s.genericAlerts.includes(alert) && s.closed, 20_000)
  await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === session.sessionId, 20_000)
  return alert
}

/** `State` as the server reads it. */
export async function readState(server: DmServer, agent: AgentProcess): Promise<string | undefined> {
  const command = get(`${ROOT}/State`)
  await idle(agent)
  const pushed = await server.pushSession([command])
  const session = await server.waitForSession((s) => s === pushed && s.closed, 20_000)
  await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === session.sessionId, 20_000)
  return session.results.flatMap((r) => r.items).find((i) => i.source === `${ROOT}/State`)?.data
}

export const url = (node: string, value: string) => replace(`${ROOT}/${node}/PkgURL`, value)
export const sha = (value: string) => replace(`${ROOT}/Ext/PkgSHA256`, value)

export async function setup(t: Test, brokerUrl: string, extra: Record<string, unknown> = {}) {
  const server = await startDmServer(factoryServer(brokerUrl, t))
  t.teardown(() => server.stop())
  const packages = await startPackageServer(t)
  const module = makeModule()
  const acl = `Get=*&Replace=${FACTORY.serverId}&Exec=${FACTORY.serverId}`
  const options = { brokerUrl, config: { fumo: { module: module.path, acl, maxBytes: 1024 * 1024, installer: 'direct', ...extra } } }
  const agent = cleanUpAgent(t, AgentProcess.start(options))
  await server.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)
  return { server, packages, module, agent }
}

