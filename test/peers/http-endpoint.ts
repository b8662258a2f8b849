/**
 * The DM Server peer's HTTP side (binding.md §10): its own small node:http(s) server, on 127.0.0.1, that takes the
 * device's POSTs and answers each with the party's next message. It records every request (path, headers, body)
 * and can answer the next ones with a fault of the test's choosing instead (a 503, a redirect, a huge body).
 * Written apart from the agent's HTTP client, on purpose: the two must agree through the wire alone.
 */
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import type { HttpModeOptions } from './party-options.ts'

export interface HttpReply {
  payload: string | Uint8Array
  contentType: string
  headers: Record<string, string>
}

export interface HttpRequestRecord {
  method: string
  path: string
  headers: http.IncomingHttpHeaders
  body: Buffer
  /** The status answered. */
  status: number
  /** Over TLS: whether the device presented a client certificate the server's CA verified. */
  clientAuthorized?: boolean
}

/** An answer given instead of the party's: a status, with headers and a body if any. */
export interface HttpFault {
  status: number
  headers?: Record<string, string>
  body?: Buffer | string
}

export type PostHandler = (body: Buffer, contentType: string | undefined, headers: Record<string, string>) => Promise<HttpReply | undefined>

export class HttpEndpoint {
  readonly requests: HttpRequestRecord[] = []
  readonly faults: HttpFault[] = []
  /** TCP connections the device opened (keep-alive: one carries a session's messages). */
  connections = 0

  private constructor(private readonly server: http.Server, readonly url: string) {}

  static async start(options: HttpModeOptions, onPost: PostHandler, changed: () => void): Promise<HttpEndpoint> {
    const tls = options.tls
    const server: http.Server = tls
      ? https.createServer({ cert: tls.cert, key: tls.key, ...(tls.ca !== undefined && { ca: tls.ca, requestCert: true, rejectUnauthorized: false }) })
      : http.createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as AddressInfo
    const endpoint = new HttpEndpoint(server, `${tls ? 'https' : 'http'}://127.0.0.1:${port}/dm`)
    server.on(tls ? 'secureConnection' : 'connection', () => {
      endpoint.connections++
    })
    server.on('request', (req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => {
        const body = Buffer.concat(chunks)
        const record: HttpRequestRecord = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body, status: 0 }
        if (tls) record.clientAuthorized = (req.socket as TLSSocket).authorized
        endpoint.requests.push(record)
        const answer = (status: number, headers: Record<string, string>, payload?: string | Uint8Array) => {
          record.status = status
          res.writeHead(status, payload === undefined ? headers : { ...headers, 'Content-Length': Buffer.byteLength(payload) })
          res.end(payload)
          changed()
        }
        const fault = endpoint.faults.shift()
        if (fault) return answer(fault.status, fault.headers ?? {}, fault.body)
        const hmac = req.headers['x-syncml-hmac']
        onPost(body, req.headers['content-type'], typeof hmac === 'string' ? { 'x-syncml-hmac': hmac } : {}).then(
          (reply) => (reply ? answer(200, { 'Content-Type': reply.contentType, ...reply.headers }, reply.payload) : answer(200, {})),
          () => answer(500, {}),
        )
      })
    })
    return endpoint
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections?.()
    await new Promise((resolve) => this.server.close(resolve))
  }
}
