/** Promises that resolve once something a peer records becomes true, re-checked whenever the peer records more. */
export class Waiters {
  private readonly listeners = new Set<() => void>()

  /** Re-checks every pending wait; call after each change. */
  notify(): void {
    for (const listener of [...this.listeners]) listener()
  }

  /**
   * Resolves with the first defined value `probe` gives, now or after a later `notify`; rejects after `timeoutMs`
   * with an error naming `what`, followed by `detail()` when given (what was seen instead).
   */
  waitFor<T>(probe: () => T | undefined, timeoutMs: number, what: string, detail?: () => string): Promise<T> {
    const now = probe()
    if (now !== undefined) return Promise.resolve(now)
    return new Promise((resolve, reject) => {
      const check = () => {
        const value = probe()
        if (value === undefined) return
        cleanup()
        resolve(value)
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(new Error(`no ${what} within ${timeoutMs} ms${detail === undefined ? '' : detail()}`))
      }, timeoutMs)
      const cleanup = () => {
        clearTimeout(timer)
        this.listeners.delete(check)
      }
      this.listeners.add(check)
    })
  }
}
