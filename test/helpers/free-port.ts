import { connect, createServer } from 'node:net'

/** A TCP port of 127.0.0.1 that was free a moment ago (the kernel picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))))
    })
  })
}

/** Resolves once `port` on 127.0.0.1 accepts a TCP connection; rejects when `gaveUp()` says so. */
export async function waitForPort(port: number, gaveUp: () => string | undefined): Promise<void> {
  for (;;) {
    const reason = gaveUp()
    if (reason !== undefined) throw new Error(reason)
    const accepted = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port })
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (accepted) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
