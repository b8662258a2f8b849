/**
 * A FUMO Download (binding.md §9) of a package from a local HTTP server: the DM Server sets
 * `./FUMO/1/Download/PkgURL` and Execs `Download` in one pushed session; timed from that push until the result
 * Generic Alert (200) reaches the server, and given as throughput (the package's size over that time). The agent
 * writes the package to its state directory and hashes it on the way. The package server (node:http, a file
 * streamed from the temporary directory) also notes when each request came and when its response was written, so
 * the transfer alone is known too. The floor: `curl -s -o /dev/null` of the same URL, spawn to exit.
 */
import { randomBytes } from 'node:crypto'
import { createReadStream, mkdtempSync, openSync, closeSync, writeSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exec, replace } from '../../test/peers/commands.ts'
import type { DmServer } from '../../test/peers/dm-server.ts'
import { alertWith } from './exec.ts'
import { run, sleep } from '../lib/processes.ts'
import { repeat, summarize, type Summary } from '../lib/stats.ts'

const REFUSAL_PACE_MS = 250
export const FUMO_ROOT = './FUMO/1'

export interface PackageServer {
  url(path: string): string
  /** Per request: ms from its arrival to its response written out. */
  transfers: number[]
  stop(): Promise<void>
}

/** Random packages of the given sizes (bytes) in a temporary folder, served at `/<size>`. */
export async function startPackageServer(sizes: number[]): Promise<PackageServer> {
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-bench-pkg-'))
  for (const size of sizes) {
    const fd = openSync(join(dir, String(size)), 'w')
    for (let at = 0; at < size; at += 1 << 20) writeSync(fd, randomBytes(Math.min(1 << 20, size - at)))
    closeSync(fd)
  }
  const transfers: number[] = []
  const server = createServer((req, res) => {
    const started = performance.now()
    const size = Number(new URL(req.url ?? '/', 'http://x').pathname.slice(1))
    if (!sizes.includes(size)) return void res.writeHead(404).end()
    res.writeHead(200, { 'content-length': size, etag: `"bench-${size}"`, 'content-type': 'application/octet-stream' })
    res.once('finish', () => transfers.push(performance.now() - started))
    createReadStream(join(dir, String(size))).pipe(res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    transfers,
    async stop() {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** A Download of `url` Exec'd by `server`, `runs` times after the warm-ups: ms from the push to the result alert. */
export async function downloadTimes(server: DmServer, url: string, options: { runs: number; warmup: number }): Promise<Summary> {
  let k = 0
  const values = await repeat(options.runs, options.warmup, async () => {
    await sleep(REFUSAL_PACE_MS)
    const correlator = `bench-fumo-${++k}`
    const command = exec(`${FUMO_ROOT}/Download`, undefined, correlator)
    const started = performance.now()
    const pushed = await server.pushSession([replace(`${FUMO_ROOT}/Download/PkgURL`, url), command])
    const alert = await server.waitFor(() => alertWith(server, correlator), 120_000, `the FUMO result alert of ${correlator}`)
    const ms = performance.now() - started
    const code = pushed.statuses.filter((s) => s.command === command).at(-1)?.code
    if (code !== '202') throw new Error(`Exec of ${FUMO_ROOT}/Download answered ${code ?? 'nothing'}, not 202`)
    if (alert.data !== '200') throw new Error(`the FUMO Download of ${url} ended ${alert.data}, not 200`)
    await server.waitForSession((s) => s.genericAlerts.includes(alert) && s.closed, 30_000)
    return ms
  })
  return summarize(values)
}

/** The floor: `curl -s -o /dev/null URL`, spawn to exit. */
export async function curlTimes(url: string, options: { runs: number; warmup: number }): Promise<Summary> {
  const values = await repeat(options.runs, options.warmup, async () => {
    const started = performance.now()
    const exit = await run('curl', ['-s', '-o', '/dev/null', url]).exited
    if (exit.code !== 0) throw new Error(`curl ${url} exited ${exit.code}: ${exit.stderr.slice(-300)}`)
    return performance.now() - started
  })
  return summarize(values)
}

/** A module that only records its calls (a Download calls none); the agent's config insists on one. */
export const RECORDING_MODULE = ['#!/bin/sh', 'echo "$1" >> "$(dirname "$0")/calls"', 'exit 0', ''].join('\n')
