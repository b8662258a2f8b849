/**
 * A bench program forked with an IPC channel: its messages are kept until asked for, so none is missed between
 * two waits, and `end()` does not return before the process is gone (SIGTERM, then SIGKILL), so a failed figure
 * never leaves a child behind holding the bench's stdout open.
 */
import { fork, type ChildProcess } from 'node:child_process'

export type ChildMessage = Record<string, unknown> & { kind: string }

const KILL_AFTER_MS = 5_000

export class IpcChild {
  private readonly inbox: ChildMessage[] = []
  private readonly waiting = new Set<() => void>()
  private failure: Error | undefined
  private readonly exited: Promise<void>

  constructor(
    private readonly name: string,
    readonly child: ChildProcess,
    onProgress: (message: ChildMessage) => void,
  ) {
    child.on('message', (message: ChildMessage) => {
      if (message.kind === 'progress') return onProgress(message)
      if (message.kind === 'error') this.failure ??= new Error(`${name}: ${String(message.error)}`)
      else this.inbox.push(message)
      this.wake()
    })
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.failure ??= new Error(`${name}: exited (${signal ?? code})`)
        this.wake()
        resolve()
      })
    })
  }

  static fork(name: string, file: string, args: string[], execArgv: string[], onProgress: (message: ChildMessage) => void): IpcChild {
    const child = fork(file, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv })
    return new IpcChild(name, child, onProgress)
  }

  send(message: ChildMessage): void {
    if (this.child.connected) this.child.send(message)
  }

  /** The next message of `kind`; rejects on the child's error or exit, or after `timeoutMs`. */
  next(kind: string, timeoutMs: number): Promise<ChildMessage> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const index = this.inbox.findIndex((m) => m.kind === kind)
        if (index < 0 && this.failure === undefined) return
        clearTimeout(timer)
        this.waiting.delete(check)
        if (index >= 0) resolve(this.inbox.splice(index, 1)[0]!)
        else reject(this.failure)
      }
      const timer = setTimeout(() => {
        this.waiting.delete(check)
        reject(new Error(`${this.name}: no ${kind} within ${timeoutMs} ms`))
      }, timeoutMs)
      this.waiting.add(check)
      check()
    })
  }

  /** Ends the process (if still running) and resolves once it has exited. */
  async end(): Promise<void> {
    const { child } = this
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const force = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS)
      await this.exited
      clearTimeout(force)
    }
  }

  private wake(): void {
    for (const check of [...this.waiting]) check()
  }
}
