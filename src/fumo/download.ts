/**
 * A FUMO package download (binding.md §9): HTTP(S) with Node's own modules, TLS verified, resumed with `Range`
 * after a dropped connection or a restart, bounded by `maxBytes` and the free space, checked against a SHA-256.
 *
 * The package grows in `<file>.part`; only a whole (and, when a digest was given, verified) package is renamed
 * to `<file>`, so a partial file is never taken for a whole one. What resuming needs (the URL and the server's
 * validator) waits beside it in `<file>.part.meta`, written once per response rather than per chunk: a lost or
 * torn meta file only costs starting again from the first byte. Without a validator (no strong `ETag`, no
 * `Last-Modified`) nothing is resumed, since bytes of two versions of a package must never be spliced.
 */
import { createHash, type Hash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import * as fs from 'node:fs/promises'
import { request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { dirname } from 'node:path'
import { finished } from 'node:stream'
import type { Logger } from '../log.ts'
import { backoffDelay, type BackoffOptions } from '../backoff.ts'
import { FUMO_RESULT, FumoFailure } from './result-codes.ts'

export interface DownloadOptions {
  url: string
  /** Where the whole package ends up; its directory holds the partial file too. */
  file: string
  maxBytes: number
  /** Hex SHA-256 the package must have (`./FUMO/<x>/Ext/PkgSHA256`), when the server set one. */
  sha256?: string
  /** PEM certificates trusted instead of the default root store (`fumo.ca`). */
  ca?: string | Buffer
  /** From the request to the response's headers. */
  connectTimeoutMs: number
  /** Longest silence of the connection once it is open. */
  idleTimeoutMs: number
  /** Attempts after the first, over connection errors, 5xx answers and dropped connections. */
  retries: number
  backoff: BackoffOptions
  signal?: AbortSignal
  log: Logger
  /** Bytes free for the package in `dir`; the filesystem's own figure unless a test says otherwise. */
  freeBytes?: (dir: string) => Promise<number>
}

export interface DownloadedPackage {
  file: string
  bytes: number
  sha256: string
}

const MAX_REDIRECTS = 5
const PART_MODE = 0o600
/** Received bytes waiting for the file beyond which the socket is paused. */
const WRITE_BACKLOG = 1 << 20
/** Written bytes after which their flush to the disk is started, so that the fsync before the rename finds little. */
const FLUSH_EVERY = 8 << 20

/** Why an attempt failed in a way another attempt may mend. */
type TransientKind = 'unreachable' | 'network' | 'server'

class TransientFailure extends Error {
  constructor(readonly kind: TransientKind, message: string) {
    super(message)
  }
}

interface ResumeMeta {
  url: string
  validator?: string
  total?: number
}

export async function downloadPackage(options: DownloadOptions): Promise<DownloadedPackage> {
  return new PackageDownload(options).run()
}

/** Removes a package and whatever a download of it left behind. */
export async function discardDownload(file: string): Promise<void> {
  await Promise.all([file, `${file}.part`, `${file}.part.meta`].map((path) => fs.rm(path, { force: true })))
}

/** The URL's origin and path: a query may carry a token, and logs hold no secret. */
export function loggableUrl(url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.origin}${parsed.pathname}`
  } catch {
    return '(malformed URL)'
  }
}

class PackageDownload {
  readonly #o: DownloadOptions
  readonly #url: URL
  readonly #part: string
  readonly #metaPath: string
  #offset = 0
  #meta: ResumeMeta
  /** The digest of the partial file's first `#hashed` bytes. */
  #hash: Hash | undefined
  #hashed = 0
  #receivedAny = false
  #nextProgressPercent = 10

  constructor(options: DownloadOptions) {
    this.#o = options
    this.#url = parsePackageUrl(options.url)
    this.#part = `${options.file}.part`
    this.#metaPath = `${this.#part}.meta`
    this.#meta = { url: options.url }
  }

  async run(): Promise<DownloadedPackage> {
    await this.#loadResumeState()
    let failures = 0
    for (;;) {
      this.#o.signal?.throwIfAborted()
      try {
        return await this.#attempt()
      } catch (err) {
        if (this.#o.signal?.aborted) throw this.#o.signal.reason
        if (err instanceof FumoFailure) {
          await discardDownload(this.#o.file)
          throw err
        }
        if (!(err instanceof TransientFailure)) throw err
        if (failures >= this.#o.retries) throw this.#giveUp(err)
        const delay = backoffDelay(failures++, this.#o.backoff)
        this.#o.log.warn('package download interrupted; trying again', {
          url: loggableUrl(this.#o.url),
          reason: err.message,
          offset: this.#offset,
          inMs: delay,
        })
        await sleep(delay, this.#o.signal)
      }
    }
  }

  /** The partial file is kept (a later download of the same URL resumes it): the failure is the network's. */
  #giveUp(last: TransientFailure): FumoFailure {
    if (last.kind === 'server') return new FumoFailure(FUMO_RESULT.SERVER_ERROR, last.message)
    if (this.#receivedAny) return new FumoFailure(FUMO_RESULT.NETWORK_FAILURE, last.message)
    if (last.kind === 'unreachable') return new FumoFailure(FUMO_RESULT.SERVER_UNAVAILABLE, last.message)
    return new FumoFailure(FUMO_RESULT.NETWORK_FAILURE, last.message)
  }

  async #loadResumeState(): Promise<void> {
    const meta = await readMeta(this.#metaPath)
    const size = await fs.stat(this.#part).then((s) => s.size, () => 0)
    if (meta !== undefined && meta.url === this.#o.url && meta.validator !== undefined && size > 0) {
      this.#meta = meta
      this.#offset = size
      this.#receivedAny = true
    } else {
      await discardDownload(this.#o.file)
    }
  }

  async #attempt(): Promise<DownloadedPackage> {
    const response = await this.#open(this.#url, MAX_REDIRECTS)
    try {
      await this.#accept(response)
      await this.#receive(response)
    } finally {
      response.destroy()
    }
    return this.#finish()
  }

  /** Checks the response's status and length, and settles where its body goes in the partial file. */
  async #accept(response: IncomingMessage): Promise<void> {
    const status = response.statusCode ?? 0
    if (status >= 500) throw new TransientFailure('server', `the download server answered ${status}`)
    if (status === 401 || status === 403 || status === 407) {
      throw new FumoFailure(FUMO_RESULT.DOWNLOAD_AUTHENTICATION_FAILURE, `the download server answered ${status}`)
    }
    if (status === 416) {
      await this.#restartFromZero()
      throw new TransientFailure('network', 'the server has no such range any more; starting again')
    }
    if (status !== 200 && status !== 206) {
      throw new FumoFailure(FUMO_RESULT.MALFORMED_URL, `the download server answered ${status}`)
    }
    let total: number | undefined
    if (status === 206) {
      const range = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(String(response.headers['content-range'] ?? ''))
      if (range === null || Number(range[1]) !== this.#offset) {
        await this.#restartFromZero()
        throw new TransientFailure('network', 'the server sent another range than the one asked for')
      }
      total = range[2] === '*' ? undefined : Number(range[2])
    } else {
      // A whole body: the server ignored the Range, or the package changed since (If-Range).
      if (this.#offset > 0) await this.#restartFromZero()
      const length = response.headers['content-length']
      total = length === undefined ? undefined : Number(length)
    }
    if (total !== undefined && total > this.#o.maxBytes) {
      throw new FumoFailure(
        FUMO_RESULT.DOWNLOAD_OUT_OF_SPACE,
        `the package (${total} bytes) is larger than fumo.maxBytes (${this.#o.maxBytes})`,
      )
    }
    if (total !== undefined) {
      const free = await (this.#o.freeBytes ?? filesystemFreeBytes)(dirname(this.#o.file))
      if (total - this.#offset > free) {
        throw new FumoFailure(
          FUMO_RESULT.DOWNLOAD_OUT_OF_SPACE,
          `the package needs ${total - this.#offset} more bytes and ${free} are free`,
        )
      }
    }
    const validator = strongValidator(response)
    if (validator !== this.#meta.validator || total !== this.#meta.total) {
      this.#meta = { url: this.#o.url, validator, total }
      await fs.writeFile(this.#metaPath, JSON.stringify(this.#meta), { mode: PART_MODE })
    }
  }

  /**
   * The body flows while the file is written: chunks are hashed as they come and gathered while one write is
   * under way, the next write takes all of them at once, and the socket is paused only when the gathered bytes
   * reach WRITE_BACKLOG. A body that breaks off still has what came before it written, so a retry resumes there.
   */
  async #receive(response: IncomingMessage): Promise<void> {
    const hash = await this.#hashOfPart()
    const file = await fs.open(this.#part, 'a', PART_MODE)
    let wrote = true
    try {
      await new Promise<void>((resolve, reject) => {
        let batch: Buffer[] = []
        let batched = 0
        let unsynced = 0
        let writing = false
        let ended = false
        let failure: unknown
        const stop = (err?: unknown): void => {
          failure ??= err
          ended = true
          next()
        }
        const next = (): void => {
          if (writing) return
          if (batched > 0 && !(failure instanceof FumoFailure)) {
            const bytes = batched
            writing = true
            file.writev(batch).then(() => {
              writing = false
              this.#offset += bytes
              if ((unsynced += bytes) >= FLUSH_EVERY) {
                unsynced = 0
                // Not awaited: the body keeps flowing; the fsync in #finish is what the rename waits for.
                file.datasync().catch(() => {})
              }
              response.resume()
              next()
            }, (err) => {
              wrote = writing = false
              batch = []
              batched = 0
              response.destroy()
              stop(err)
            })
            batch = []
            batched = 0
          } else if (ended) {
            if (failure === undefined) resolve()
            else reject(failure)
          }
        }
        response.on('data', (chunk: Buffer) => {
          if (this.#hashed + chunk.length > this.#o.maxBytes) {
            response.destroy()
            return stop(new FumoFailure(
              FUMO_RESULT.DOWNLOAD_OUT_OF_SPACE,
              `the package is larger than fumo.maxBytes (${this.#o.maxBytes})`,
            ))
          }
          hash.update(chunk)
          this.#hashed += chunk.length
          this.#receivedAny = true
          batch.push(chunk)
          batched += chunk.length
          if (batched >= WRITE_BACKLOG) response.pause()
          this.#logProgress()
          next()
        })
        // Also settles for a response that broke before this listened: the connection may drop at its first bytes.
        finished(response, (err) => stop(err ?? undefined))
      })
    } catch (err) {
      // A write that failed may have written part of its bytes: the file's size is what resuming goes by.
      if (!wrote) this.#offset = (await file.stat()).size
      if (err instanceof FumoFailure) throw err
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        throw new FumoFailure(FUMO_RESULT.DOWNLOAD_OUT_OF_SPACE, 'the state partition is full')
      }
      throw new TransientFailure('network', `the connection broke after ${this.#offset} bytes`)
    } finally {
      await file.close()
    }
    const total = this.#meta.total
    if (total !== undefined && this.#offset !== total) {
      throw new TransientFailure('network', `the connection ended after ${this.#offset} of ${total} bytes`)
    }
  }

  async #finish(): Promise<DownloadedPackage> {
    const digest = (await this.#hashOfPart()).digest('hex')
    this.#hash = undefined
    if (this.#o.sha256 !== undefined && digest !== this.#o.sha256.toLowerCase()) {
      throw new FumoFailure(FUMO_RESULT.CORRUPT_PACKAGE, 'the package does not match Ext/PkgSHA256')
    }
    const file = await fs.open(this.#part, 'r+')
    try {
      await file.sync()
    } finally {
      await file.close()
    }
    await fs.rename(this.#part, this.#o.file)
    await fs.rm(this.#metaPath, { force: true })
    await syncDirectory(dirname(this.#o.file))
    this.#o.log.info('package downloaded', { url: loggableUrl(this.#o.url), bytes: this.#offset })
    return { file: this.#o.file, bytes: this.#offset, sha256: digest }
  }

  /** The running digest, caught up with the partial file (read back once after a restart). */
  async #hashOfPart(): Promise<Hash> {
    if (this.#hash !== undefined && this.#hashed === this.#offset) return this.#hash
    const hash = createHash('sha256')
    if (this.#offset > 0) {
      for await (const chunk of createReadStream(this.#part, { end: this.#offset - 1 })) hash.update(chunk as Buffer)
    }
    this.#hash = hash
    this.#hashed = this.#offset
    return hash
  }

  async #restartFromZero(): Promise<void> {
    await discardDownload(this.#o.file)
    this.#offset = 0
    this.#hash = undefined
    this.#meta = { url: this.#o.url }
    this.#nextProgressPercent = 10
  }

  #logProgress(): void {
    const total = this.#meta.total
    if (total === undefined || total === 0) return
    const percent = Math.floor((this.#hashed * 100) / total)
    if (percent < this.#nextProgressPercent) return
    this.#nextProgressPercent = Math.floor(percent / 10) * 10 + 10
    this.#o.log.info('package download progress', { percent, bytes: this.#hashed, total })
  }

  /** One request, following redirects within the same scheme (a download never moves from HTTPS to HTTP). */
  #open(url: URL, redirectsLeft: number): Promise<IncomingMessage> {
    return new Promise<IncomingMessage>((resolve, reject) => {
      const headers: Record<string, string> = { accept: '*/*' }
      if (this.#offset > 0 && this.#meta.validator !== undefined) {
        headers.range = `bytes=${this.#offset}-`
        headers['if-range'] = this.#meta.validator
      }
      const requestOptions: RequestOptions & { ca?: string | Buffer } = {
        method: 'GET',
        headers,
        agent: false,
        signal: this.#o.signal,
      }
      if (url.protocol === 'https:' && this.#o.ca !== undefined) requestOptions.ca = this.#o.ca
      const request: ClientRequest = (url.protocol === 'https:' ? httpsRequest : httpRequest)(
        url,
        requestOptions,
      )
      const connectTimer = setTimeout(() => {
        request.destroy(new TransientFailure('unreachable', 'the download server did not answer in time'))
      }, this.#o.connectTimeoutMs)
      request.setTimeout(this.#o.idleTimeoutMs, () => {
        request.destroy(new TransientFailure('network', 'the connection went quiet'))
      })
      request.on('error', (err) => {
        clearTimeout(connectTimer)
        reject(classifyRequestError(err, this.#o.signal))
      })
      request.on('response', (response) => {
        clearTimeout(connectTimer)
        const status = response.statusCode ?? 0
        if (status < 300 || status >= 400 || status === 304) return resolve(response)
        response.destroy()
        const location = response.headers.location
        let next: URL | undefined
        try {
          next = location === undefined ? undefined : new URL(location, url)
        } catch {
          next = undefined
        }
        if (next === undefined || redirectsLeft === 0) {
          return reject(new FumoFailure(FUMO_RESULT.MALFORMED_URL, `the download server answered ${status}`))
        }
        if (next.protocol !== url.protocol) {
          return reject(
            new FumoFailure(FUMO_RESULT.MALFORMED_URL, `a redirect from ${url.protocol} to ${next.protocol} is refused`),
          )
        }
        this.#open(next, redirectsLeft - 1).then(resolve, reject)
      })
      request.end()
    })
  }
}

function parsePackageUrl(text: string): URL {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new FumoFailure(FUMO_RESULT.MALFORMED_URL, 'PkgURL is not a URL')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new FumoFailure(FUMO_RESULT.MALFORMED_URL, `PkgURL's scheme ${url.protocol} is not http: or https:`)
  }
  if (url.username !== '' || url.password !== '') {
    // Credentials in a URL end up in logs and process listings; a server that needs them is not supported.
    throw new FumoFailure(FUMO_RESULT.MALFORMED_URL, 'PkgURL carries credentials')
  }
  return url
}

/** A certificate the device cannot verify is final; anything else on the way may mend. */
function classifyRequestError(err: Error, signal: AbortSignal | undefined): Error {
  if (err instanceof TransientFailure) return err
  if (signal?.aborted) return signal.reason instanceof Error ? signal.reason : err
  const code = (err as NodeJS.ErrnoException).code ?? ''
  if (/CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ALTNAME/.test(code)) {
    return new FumoFailure(FUMO_RESULT.SERVER_UNAVAILABLE, `the download server's certificate is not trusted (${code})`)
  }
  if (/ENOTFOUND|EAI_AGAIN|ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT/.test(code)) {
    return new TransientFailure('unreachable', `the download server cannot be reached (${code})`)
  }
  return new TransientFailure('network', `the connection failed (${code || err.message})`)
}

/** `If-Range` takes a strong ETag or a date; a weak ETag cannot promise the same bytes. */
function strongValidator(response: IncomingMessage): string | undefined {
  const etag = response.headers.etag
  if (etag !== undefined && !etag.startsWith('W/')) return etag
  return response.headers['last-modified']
}

async function readMeta(path: string): Promise<ResumeMeta | undefined> {
  try {
    const parsed = JSON.parse(await fs.readFile(path, 'utf8')) as ResumeMeta
    return typeof parsed.url === 'string' ? parsed : undefined
  } catch {
    return undefined
  }
}

async function filesystemFreeBytes(dir: string): Promise<number> {
  if (typeof fs.statfs !== 'function') return Number.POSITIVE_INFINITY
  const stats = await fs.statfs(dir)
  return stats.bavail * stats.bsize
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r')
  try {
    await handle.sync()
  } catch {
    // Some filesystems cannot fsync a directory; the rename is then as durable as they make it.
  } finally {
    await handle.close()
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms)
    function done(): void {
      signal?.removeEventListener('abort', aborted)
      resolve()
    }
    function aborted(): void {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    signal?.addEventListener('abort', aborted, { once: true })
  })
}
