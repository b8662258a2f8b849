/**
 * The HTTP binding of binding.md §10 behind the sessions' port: OMA DM 1.2's own, with the device as the client.
 * Each message is a POST to the account's URL (then to the RespURI the server named); the response body is the
 * server's next message, handed to the sessions as the answer on that exchange. Node's `http` and `https` alone
 * (they are Bun's too): no dependency.
 *
 * - HTTPS verifies the server against the system's CAs, or against the account's own CA alone when it has one,
 *   and presents the account's client certificate when it has one. Verification is never turned off.
 * - Redirects are not followed (a server that moves names its RespURI); a RespURI is taken only as an http(s) URL
 *   without credentials in it, and never as http:// for an https:// account.
 * - A response body larger than the device's MaxMsgSize is refused: reading stops, the request is aborted.
 * - Connection errors, timeouts (the session's) and 5xx answers are lost messages (the session sends again after a
 *   backoff); anything else that is not a 2xx would be refused again and fails the session (TransportError).
 * - One keep-alive agent per account, so that a session's messages go over one connection.
 */
import http from 'node:http'
import https from 'node:https'
import { TransportError } from '../../errors.ts'
import type { Logger } from '../../log.ts'
import type { HttpRoute, OutboundMessage, Transport, TransportEvents } from '../../session/port.ts'

export interface HttpTls {
  ca?: string
  cert?: string
  key?: string
}

export interface HttpTransportOptions {
  logger: Logger
  /** The MaxMsgSize the device announces: no response body larger than this is read. */
  maxMsgSize: number
  /** How long one POST may take until its whole response is in: the session timeout. */
  timeoutMs: number
  /** The PEM texts of an account's HTTPS connections (`./DMAcc/<x>/Ext/GwmoAgent/CA`, `ClientCert`, `ClientKey`). */
  tlsFor(account: string): HttpTls
}

/** The header OMA DM's HTTP binding carries HMAC credentials in (DM Security 1.2, 5.1.3). */
const HMAC_HEADER = 'x-syncml-hmac'
const ACCEPT = 'application/vnd.syncml.dm+xml, application/vnd.syncml.dm+wbxml'
/** Idle keep-alive connections are closed after this long: a session's next message comes well within it. */
const IDLE_SOCKET_MS = 30_000
/** Error codes of a server certificate that does not verify: asking again gets the same answer. */
const UNTRUSTED = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ALTNAME|HOSTNAME/i

interface AccountAgent {
  /** The TLS material it was made with, so that a changed CA or certificate gets a new one. */
  fingerprint: string
  agent: http.Agent
}

/** The URL a message goes to (binding.md §10), or why it is refused. */
export function targetOf(route: HttpRoute): URL | string {
  let base: URL
  try {
    base = new URL(route.url)
  } catch {
    return 'the account\'s Addr is not a URL'
  }
  if (route.respUri === undefined) return base
  let resp: URL
  try {
    resp = new URL(route.respUri, base)
  } catch {
    return 'RespURI is not a URL'
  }
  if (resp.protocol !== 'http:' && resp.protocol !== 'https:') return `RespURI scheme ${resp.protocol} is not http(s)`
  if (base.protocol === 'https:' && resp.protocol !== 'https:') return 'RespURI would leave https for http'
  if (resp.username !== '' || resp.password !== '') return 'RespURI carries a user name or password'
  return resp
}

export function createHttpTransport(options: HttpTransportOptions): Transport {
  const log = options.logger.child({ module: 'http' })
  let events: TransportEvents | undefined
  let stopped = false
  const agents = new Map<string, AccountAgent>()

  /** The account's keep-alive agent for `protocol`, made again when its TLS material changed. */
  const agentFor = (account: string, protocol: string, tls: HttpTls): http.Agent => {
    const key = `${protocol}${account}`
    const fingerprint = JSON.stringify([tls.ca, tls.cert, tls.key])
    const existing = agents.get(key)
    if (existing?.fingerprint === fingerprint) return existing.agent
    existing?.agent.destroy()
    const settings = { keepAlive: true, maxSockets: 1, timeout: IDLE_SOCKET_MS }
    const agent = protocol === 'https:' ? new https.Agent({ ...settings, ...tls }) : new http.Agent(settings)
    agents.set(key, { fingerprint, agent })
    return agent
  }

  function post(message: OutboundMessage, route: HttpRoute, url: URL): Promise<void> {
    const account = message.account ?? message.to
    const tls = url.protocol === 'https:' ? options.tlsFor(account) : {}
    const hmac = message.properties?.[HMAC_HEADER]
    const headers: http.OutgoingHttpHeaders = {
      'Content-Type': message.contentType,
      Accept: ACCEPT,
      'Content-Length': message.payload.length,
      ...(hmac !== undefined && { [HMAC_HEADER]: hmac }),
    }
    const request = url.protocol === 'https:' ? https.request : http.request
    const where = { party: message.to, sessionId: route.sessionId, url: url.origin + url.pathname }
    return new Promise((resolve, reject) => {
      let settled = false
      const fail = (error: TransportError) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        req.destroy()
        reject(error)
      }
      const req = request(url, {
        method: 'POST',
        headers,
        agent: agentFor(account, url.protocol, tls),
        // Also on the request: a runtime whose agent ignores TLS options still verifies against the account's CA.
        ...tls,
        rejectUnauthorized: true,
      })
      const timer = setTimeout(() => fail(new TransportError('lost', `no whole answer from ${url.origin} within ${options.timeoutMs} ms`)), options.timeoutMs)
      req.on('error', (error: NodeJS.ErrnoException) => {
        const code = error.code ?? error.message
        if (UNTRUSTED.test(code)) {
          log.warn('server certificate not trusted', { ...where, code })
          fail(new TransportError('refused', `${url.origin}: server certificate not trusted (${code})`))
        } else fail(new TransportError('lost', `${url.origin}: ${code}`))
      })
      req.on('response', (res) => {
        const status = res.statusCode ?? 0
        if (status < 200 || status >= 300) {
          res.resume()
          if (status >= 300 && status < 400) {
            // binding.md §10: a server that moves says so with its RespURI; a redirect is not followed.
            log.warn('redirect not followed', { ...where, status, location: res.headers.location })
            return fail(new TransportError('refused', `${url.origin} answered ${status}: redirects are not followed`))
          }
          if (status >= 500) {
            log.info('server error, message to be sent again', { ...where, status })
            return fail(new TransportError('lost', `${url.origin} answered ${status}`))
          }
          log.warn('message refused by the server', { ...where, status })
          return fail(new TransportError('refused', `${url.origin} answered ${status}`))
        }
        const announced = Number(res.headers['content-length'])
        const tooLarge = (bytes: number) => {
          log.warn('response larger than the device\'s MaxMsgSize refused', { ...where, bytes, max: options.maxMsgSize })
          fail(new TransportError('refused', `${url.origin}: response of ${bytes} bytes over MaxMsgSize ${options.maxMsgSize}`))
        }
        if (announced > options.maxMsgSize) return tooLarge(announced)
        const chunks: Buffer[] = []
        let bytes = 0
        res.on('data', (chunk: Buffer) => {
          if (settled) return
          bytes += chunk.length
          if (bytes > options.maxMsgSize) return tooLarge(bytes)
          chunks.push(chunk)
        })
        res.on('error', () => fail(new TransportError('lost', `${url.origin}: response cut short`)))
        res.on('end', () => {
          if (settled) return
          settled = true
          clearTimeout(timer)
          resolve()
          // An empty body is no message (the answer to our last one, when the server has nothing more to say).
          if (bytes > 0) deliver(message, route, res, Buffer.concat(chunks, bytes))
        })
      })
      req.end(message.payload)
    })
  }

  /** The response is the server's next message, on the exchange of the POST it answers (binding.md §10). */
  function deliver(message: OutboundMessage, route: HttpRoute, res: http.IncomingMessage, body: Buffer): void {
    if (stopped || events === undefined) return
    const contentType = res.headers['content-type']
    const hmac = res.headers[HMAC_HEADER]
    try {
      events.message({
        channel: 'dm',
        payload: body,
        ...(contentType !== undefined && { contentType }),
        properties: typeof hmac === 'string' ? { [HMAC_HEADER]: hmac } : {},
        exchange: { party: message.to, sessionId: route.sessionId },
      })
    } catch (error) {
      log.error('message handler failed', { error })
    }
  }

  return {
    async start(handlers) {
      events = handlers
    },

    async send(message) {
      const route = message.http
      if (stopped || route === undefined) throw new TransportError('refused', `http: cannot send to ${message.to}${stopped ? ', stopped' : ': no URL'}`)
      const target = targetOf(route)
      if (typeof target === 'string') {
        log.warn(route.respUri === undefined ? 'account URL refused' : 'RespURI refused', { party: message.to, sessionId: route.sessionId, reason: target })
        throw new TransportError('refused', target)
      }
      log.debug('posting', { party: message.to, url: target.origin + target.pathname, bytes: message.payload.length })
      await post(message, route, target)
    },

    async stop() {
      stopped = true
      for (const { agent } of agents.values()) agent.destroy()
      agents.clear()
    },
  }
}
