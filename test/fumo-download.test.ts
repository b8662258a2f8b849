/**
 * The FUMO package download (binding.md §9) against a real local HTTP(S) server of the test's own: whole,
 * resumed after a dropped connection or a restart (the server sees the `Range`), bounded, checked, and each
 * failure with its FUMO result code and nothing left behind that could pass for a package.
 */
import t, { type Test } from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createTlsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { downloadPackage, type DownloadOptions } from '../src/fumo/download.ts'
import { FumoFailure } from '../src/fumo/result-codes.ts'
import { createLogger } from '../src/log.ts'
import { makeCertificates } from './helpers/test-certificates.ts'
import { freePort } from './helpers/free-port.ts'

const PACKAGE = randomBytes(256 * 1024)
const PACKAGE_SHA256 = createHash('sha256').update(PACKAGE).digest('hex')
const ETAG = '"v1"'

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void

interface TestServer {
  url: string
  requests: IncomingMessage[]
  close(): Promise<void>
}

async function serve(t: Test, handler: Handler, tls?: { key: Buffer; cert: Buffer }): Promise<TestServer> {
  const requests: IncomingMessage[] = []
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    requests.push(req)
    handler(req, res, requests.length)
  }
  const server: Server = tls ? createTlsServer(tls, listener) : createServer(listener)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  t.teardown(close)
  return { url: `${tls ? 'https' : 'http'}://${tls ? 'localhost' : '127.0.0.1'}:${port}/pkg.bin?token=s3cret`, requests, close }
}

/** Serves the package with an ETag, honouring `Range` + `If-Range`; `cutAt` ends the connection after that many bytes. */
function servePackage(res: ServerResponse, req: IncomingMessage, options: { cutAt?: number; etag?: string | null; body?: Buffer } = {}): void {
  const body = options.body ?? PACKAGE
  const etag = options.etag === undefined ? ETAG : options.etag
  const headers: Record<string, string | number> = {}
  if (etag !== null) headers.etag = etag
  let start = 0
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '')
  if (range && etag !== null && req.headers['if-range'] === etag) start = Number(range[1])
  const slice = body.subarray(start)
  if (start > 0) {
    res.writeHead(206, { ...headers, 'content-length': slice.length, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` })
  } else {
    res.writeHead(200, { ...headers, 'content-length': slice.length })
  }
  if (options.cutAt === undefined) return void res.end(slice)
  res.write(slice.subarray(0, options.cutAt), () => setTimeout(() => res.socket?.destroy(), 20))
}

function workDir(): string {
  return mkdtempSync(join(tmpdir(), 'gwmo-fumo-download-'))
}

function options(url: string, dir: string, lines: string[], extra: Partial<DownloadOptions> = {}): DownloadOptions {
  return {
    url,
    file: join(dir, 'package'),
    maxBytes: 10 * 1024 * 1024,
    connectTimeoutMs: 2000,
    idleTimeoutMs: 2000,
    retries: 2,
    backoff: { baseMs: 10, capMs: 20 },
    log: createLogger({ level: 'debug', write: (line) => lines.push(line) }),
    ...extra,
  }
}

async function failure(t: Test, promise: Promise<unknown>): Promise<FumoFailure> {
  const err = await promise.then(() => undefined, (e: unknown) => e)
  t.type(err, FumoFailure)
  return err as FumoFailure
}

function leftovers(dir: string): string[] {
  return ['package', 'package.part', 'package.part.meta'].filter((name) => existsSync(join(dir, name)))
}

t.test('a whole download: the file, its digest, progress every 10 %, and no token in the log', async (t) => {
  const server = await serve(t, (req, res) => servePackage(res, req))
  const dir = workDir()
  const lines: string[] = []
  const result = await downloadPackage(options(server.url, dir, lines, { sha256: PACKAGE_SHA256.toUpperCase() }))
  t.equal(result.bytes, PACKAGE.length)
  t.equal(result.sha256, PACKAGE_SHA256)
  t.ok(readFileSync(join(dir, 'package')).equals(PACKAGE))
  t.same(leftovers(dir), ['package'])
  const progress = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'package download progress')
  t.ok(progress.length >= 1 && progress.length <= 10, `${progress.length} progress lines`)
  t.equal(progress.at(-1).percent, 100)
  t.notMatch(lines.join('\n'), /s3cret/)
})

t.test('a connection dropped mid-way is resumed with Range and If-Range', async (t) => {
  const server = await serve(t, (req, res, n) => servePackage(res, req, n === 1 ? { cutAt: 100_000 } : {}))
  const dir = workDir()
  const result = await downloadPackage(options(server.url, dir, [], { sha256: PACKAGE_SHA256 }))
  t.equal(result.sha256, PACKAGE_SHA256)
  t.equal(server.requests.length, 2)
  t.match(server.requests[1]!.headers.range, /^bytes=\d+-$/)
  t.not(server.requests[1]!.headers.range, 'bytes=0-')
  t.equal(server.requests[1]!.headers['if-range'], ETAG)
})

t.test('a download stopped (the agent going down) resumes at the next start from the partial file', async (t) => {
  let stalled: (() => void) | undefined
  const server = await serve(t, (req, res, n) => {
    if (n > 1) return servePackage(res, req)
    res.writeHead(200, { etag: ETAG, 'content-length': PACKAGE.length })
    res.write(PACKAGE.subarray(0, 150_000), () => stalled?.())
  })
  const dir = workDir()
  const stop = new AbortController()
  const first = downloadPackage(options(server.url, dir, [], { signal: stop.signal }))
  await new Promise<void>((resolve) => (stalled = resolve))
  await new Promise((resolve) => setTimeout(resolve, 50))
  stop.abort(new Error('stopping'))
  await t.rejects(first, /stopping/)
  t.same(leftovers(dir), ['package.part', 'package.part.meta'], 'the partial file stays, and is not the package')

  const result = await downloadPackage(options(server.url, dir, [], { sha256: PACKAGE_SHA256 }))
  t.equal(result.sha256, PACKAGE_SHA256)
  t.match(server.requests[1]!.headers.range, /^bytes=1\d{5}-$/, 'the second request asks for the rest only')
})

t.test('a package that changed since the partial download starts again from the first byte', async (t) => {
  const newer = randomBytes(200 * 1024)
  const server = await serve(t, (req, res, n) => {
    if (n === 1) return servePackage(res, req, { cutAt: 50_000 })
    servePackage(res, req, { etag: '"v2"', body: newer })
  })
  const dir = workDir()
  const result = await downloadPackage(options(server.url, dir, []))
  t.equal(server.requests[1]!.headers['if-range'], ETAG)
  t.equal(result.sha256, createHash('sha256').update(newer).digest('hex'), 'no splice of two versions')
})

t.test('without a validator nothing is resumed', async (t) => {
  const server = await serve(t, (req, res, n) => servePackage(res, req, { etag: null, ...(n === 1 ? { cutAt: 60_000 } : {}) }))
  const dir = workDir()
  const result = await downloadPackage(options(server.url, dir, []))
  t.equal(result.sha256, PACKAGE_SHA256)
  t.equal(server.requests[1]!.headers.range, undefined)
})

t.test('a checksum mismatch is 402 and removes the package', async (t) => {
  const server = await serve(t, (req, res) => servePackage(res, req))
  const dir = workDir()
  const err = await failure(t, downloadPackage(options(server.url, dir, [], { sha256: '00'.repeat(32) })))
  t.equal(err.result, 402)
  t.same(leftovers(dir), [])
})

t.test('larger than fumo.maxBytes, announced or not, is 501; so is more than the free space', async (t) => {
  const server = await serve(t, (req, res) => {
    if (req.url?.includes('chunked')) {
      res.writeHead(200, { etag: ETAG })
      res.end(PACKAGE)
      return
    }
    servePackage(res, req)
  })
  const dir = workDir()
  const announced = await failure(t, downloadPackage(options(server.url, dir, [], { maxBytes: 1000 })))
  t.equal(announced.result, 501)
  t.equal(server.requests.length, 1, 'no retry')
  const chunked = await failure(t, downloadPackage(options(server.url.replace('pkg.bin', 'chunked'), dir, [], { maxBytes: 100_000 })))
  t.equal(chunked.result, 501)
  t.same(leftovers(dir), [])
  const full = await failure(t, downloadPackage(options(server.url, dir, [], { freeBytes: async () => 1000 })))
  t.equal(full.result, 501)
  t.same(leftovers(dir), [])
})

t.test('bad URLs and refusing servers: 411, 406, and no retries', async (t) => {
  const server = await serve(t, (req, res) => {
    res.writeHead(req.url?.startsWith('/private') ? 401 : 404)
    res.end()
  })
  const dir = workDir()
  for (const url of ['not a url', 'ftp://127.0.0.1/pkg', 'http://user:pw@127.0.0.1/pkg']) {
    t.equal((await failure(t, downloadPackage(options(url, dir, [])))).result, 411, url)
  }
  t.equal(server.requests.length, 0)
  t.equal((await failure(t, downloadPackage(options(server.url, dir, [])))).result, 411, '404')
  t.equal((await failure(t, downloadPackage(options(server.url.replace('/pkg.bin', '/private'), dir, [])))).result, 406, '401')
  t.equal(server.requests.length, 2)
})

t.test('5xx is retried, then 500; a server that recovers is fine', async (t) => {
  const failing = await serve(t, (_req, res) => {
    res.writeHead(503)
    res.end()
  })
  const dir = workDir()
  t.equal((await failure(t, downloadPackage(options(failing.url, dir, [], { retries: 2 })))).result, 500)
  t.equal(failing.requests.length, 3, 'the first attempt and two retries')

  const recovering = await serve(t, (req, res, n) => {
    if (n === 1) {
      res.writeHead(502)
      return void res.end()
    }
    servePackage(res, req)
  })
  t.equal((await downloadPackage(options(recovering.url, dir, []))).sha256, PACKAGE_SHA256)
})

t.test('a server that cannot be reached is 412; one that keeps dropping the connection is 503', async (t) => {
  const dir = workDir()
  const closedPort = await freePort()
  t.equal((await failure(t, downloadPackage(options(`http://127.0.0.1:${closedPort}/p`, dir, [])))).result, 412)

  const dropping = await serve(t, (req, res) => servePackage(res, req, { cutAt: 10_000 }))
  const err = await failure(t, downloadPackage(options(dropping.url, dir, [], { retries: 2 })))
  t.equal(err.result, 503)
  t.equal(dropping.requests.length, 3)
  t.ok(leftovers(dir).includes('package.part'), 'what came is kept for the next download of the same URL')
  t.notOk(leftovers(dir).includes('package'))
})

t.test('silence: a server that never answers is 412, one that stalls mid-way is resumed', async (t) => {
  const silent = await serve(t, () => {})
  const dir = workDir()
  const err = await failure(t, downloadPackage(options(silent.url, dir, [], { connectTimeoutMs: 100, retries: 1 })))
  t.equal(err.result, 412)

  const stalling = await serve(t, (req, res, n) => {
    if (n > 1) return servePackage(res, req)
    res.writeHead(200, { etag: ETAG, 'content-length': PACKAGE.length })
    res.write(PACKAGE.subarray(0, 70_000))
  })
  const result = await downloadPackage(options(stalling.url, dir, [], { idleTimeoutMs: 150 }))
  t.equal(result.sha256, PACKAGE_SHA256)
  t.match(stalling.requests[1]!.headers.range, /^bytes=70000-$/)
})

t.test('redirects: followed within the scheme, refused to another one (411)', async (t) => {
  const target = await serve(t, (req, res) => servePackage(res, req))
  const redirecting = await serve(t, (req, res) => {
    const location = req.url?.startsWith('/tls') ? target.url.replace('http:', 'https:') : target.url
    res.writeHead(302, { location })
    res.end()
  })
  const dir = workDir()
  t.equal((await downloadPackage(options(redirecting.url, dir, []))).sha256, PACKAGE_SHA256)
  const err = await failure(t, downloadPackage(options(redirecting.url.replace('/pkg.bin', '/tls'), dir, [])))
  t.equal(err.result, 411)
})

t.test('HTTPS: verified against fumo.ca, refused (412, no retry) without it', async (t) => {
  const certs = workDir()
  makeCertificates(certs)
  const server = await serve(t, (req, res) => servePackage(res, req), {
    key: readFileSync(join(certs, 'server.key')),
    cert: readFileSync(join(certs, 'server.pem')),
  })
  const dir = workDir()
  const ca = readFileSync(join(certs, 'ca.pem'), 'utf8')
  t.equal((await downloadPackage(options(server.url, dir, [], { ca }))).sha256, PACKAGE_SHA256)
  const lines: string[] = []
  const err = await failure(t, downloadPackage(options(server.url, workDir(), lines)))
  t.equal(err.result, 412)
  t.match(err.message, /certificate/)
  t.equal(server.requests.length, 1, 'the untrusted server never saw a request')
})
