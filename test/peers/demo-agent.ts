/**
 * The real bundled agent as a child process for the demo: `node gwmo-agent.js --config FILE`, its JSON log
 * lines read from stdout as they come, and stopped the way systemd stops it (SIGTERM).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { Waiters } from './waiters.ts'

export type AgentLogLine = Record<string, unknown> & { level: string; msg: string }

export interface AgentChildOptions {
  bundle: string
  /** The program that runs the bundle; this process's Node when absent. */
  runtime?: string
  configFile: string
  logLevel: 'debug' | 'info'
  /** Milliseconds between SIGTERM and SIGKILL in `stop()`; STOP_GRACE_MS when absent. */
  stopGraceMs?: number
  /** Called with each log line as it arrives. */
  onLog?: (line: AgentLogLine) => void
}

export interface AgentExit {
  code: number | null
  signal: NodeJS.Signals | null
}

/** Milliseconds the agent gets after SIGTERM before it is killed (it promises to stop within 5 s). */
export const STOP_GRACE_MS = 7000

export class AgentChild {
  readonly logs: AgentLogLine[] = []
  stderr = ''
  readonly exited: Promise<AgentExit>
  #exit: AgentExit | undefined
  #partial = ''
  readonly #child: ChildProcess
  readonly #waiters = new Waiters()
  readonly #stopGraceMs: number

  constructor(options: AgentChildOptions) {
    this.#stopGraceMs = options.stopGraceMs ?? STOP_GRACE_MS
    this.#child = spawn(options.runtime ?? process.execPath, [options.bundle, '--config', options.configFile, '--log-level', options.logLevel], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    })
    this.#child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (this.#partial + chunk).split('\n')
      this.#partial = lines.pop() ?? ''
      for (const text of lines) {
        const line = parseLogLine(text)
        if (line === undefined) continue
        this.logs.push(line)
        options.onLog?.(line)
      }
      this.#waiters.notify()
    })
    this.#child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk
    })
    this.exited = new Promise((resolve) => {
      this.#child.once('exit', (code, signal) => {
        this.#exit = { code, signal }
        this.#waiters.notify()
        resolve(this.#exit)
      })
    })
  }

  get running(): boolean {
    return this.#exit === undefined
  }

  /** The first log line (already seen or to come) that matches, or a rejection naming `what`. */
  async waitForLog(predicate: (line: AgentLogLine) => boolean, timeoutMs: number, what: string): Promise<AgentLogLine> {
    // `null` ends the wait early: the agent is gone and no such line will come.
    const found = await this.#waiters.waitFor(
      () => this.logs.find(predicate) ?? (this.#exit === undefined ? undefined : null),
      timeoutMs,
      `agent log: ${what}`,
    )
    if (found === null) throw new Error(`the agent exited (${this.describeExit()}) before ${what}`)
    return found
  }

  describeExit(): string {
    const exit = this.#exit
    if (exit === undefined) return 'running'
    const reason = exit.code !== null ? `code ${exit.code}` : `signal ${exit.signal}`
    const said = this.stderr.trim().split('\n').pop()
    return said ? `${reason}: ${said}` : reason
  }

  /** SIGTERM, and SIGKILL if it has not exited within the grace period. */
  async stop(): Promise<AgentExit> {
    if (this.#exit !== undefined) return this.#exit
    this.#child.kill('SIGTERM')
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), this.#stopGraceMs)
    try {
      return await this.exited
    } finally {
      clearTimeout(timer)
    }
  }
}

function parseLogLine(text: string): AgentLogLine | undefined {
  if (text.trim() === '') return undefined
  try {
    const parsed = JSON.parse(text) as unknown
    if (typeof parsed === 'object' && parsed !== null && typeof (parsed as { msg?: unknown }).msg === 'string') {
      return parsed as AgentLogLine
    }
  } catch {
    // Not a log line; the agent writes only JSON to stdout, so this is unexpected and shown as text.
  }
  return { level: 'text', msg: text }
}
