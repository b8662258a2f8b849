/**
 * Running an integrator's program (binding.md §8, §9): argv only, never a shell; a minimal environment, so that
 * nothing of the agent's own (its secrets above all) reaches the program; its own process group, so that a
 * timeout or an abort ends whatever it started too; and bounded output.
 */
import { spawn } from 'node:child_process'
import { statSync } from 'node:fs'
import { isAbsolute } from 'node:path'

export interface RunOptions {
  /** Written to the program's stdin, which is then closed (closed at once when absent). */
  stdin?: string | Uint8Array
  /** The program's whole environment besides `PATH` and `LANG`; nothing is inherited from the agent. */
  env?: Record<string, string>
  /** SIGTERM to the group after this long, SIGKILL `KILL_AFTER_MS` later. */
  timeoutMs: number
  /** Each of stdout and stderr keeps at most this many bytes; the rest is read and dropped. */
  maxBytes: number
  /** Aborting ends the program's group as its timeout would (without `timedOut`). */
  signal?: AbortSignal
}

export interface RunResult {
  exitCode: number | null
  signal: NodeJS.Signals | null
  stdout: Uint8Array
  stderr: Uint8Array
  timedOut: boolean
  /** Some of stdout or stderr went beyond `maxBytes` and was dropped. */
  truncated: boolean
}

/** From SIGTERM to SIGKILL: a program gets this long to end cleanly. */
export const KILL_AFTER_MS = 5000

const BASE_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' }

class Capped {
  readonly chunks: Buffer[] = []
  size = 0
  over = false

  constructor(private readonly max: number) {}

  add(chunk: Buffer): void {
    const room = this.max - this.size
    if (chunk.length > room) this.over = true
    if (room <= 0) return
    const kept = chunk.length > room ? chunk.subarray(0, room) : chunk
    this.chunks.push(kept)
    this.size += kept.length
  }

  bytes(): Uint8Array {
    return new Uint8Array(Buffer.concat(this.chunks, this.size))
  }
}

/**
 * Runs `argv` and resolves once it has ended and its output is closed, whatever its exit; rejects only when it
 * could not be started (a missing or non-executable file, an abort before it began).
 */
export function runProgram(argv: string[], options: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const { signal } = options
    if (signal?.aborted) return reject(signal.reason ?? new Error('aborted'))
    let child: ReturnType<typeof spawn>
    try {
      child = spawn(argv[0]!, argv.slice(1), {
        env: { ...BASE_ENV, ...options.env },
        detached: true,
        cwd: '/',
        stdio: 'pipe',
      })
    } catch (error) {
      return reject(error)
    }
    const out = new Capped(options.maxBytes)
    const err = new Capped(options.maxBytes)
    let started = false
    let timedOut = false
    let killTimer: NodeJS.Timeout | undefined

    // Negative pid: the whole group the program leads, so its children end with it.
    const killGroup = (sig: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, sig)
      } catch {
        // The group has already gone.
      }
    }
    const stop = () => {
      if (killTimer) return
      killGroup('SIGTERM')
      killTimer = setTimeout(() => killGroup('SIGKILL'), KILL_AFTER_MS)
      killTimer.unref()
    }
    const timer = setTimeout(() => {
      timedOut = true
      stop()
    }, options.timeoutMs)
    signal?.addEventListener('abort', stop, { once: true })
    const done = () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', stop)
    }

    child.on('spawn', () => {
      started = true
      // A program that does not read its stdin closes it; that is no failure of ours.
      child.stdin!.on('error', () => {})
      child.stdin!.end(options.stdin ?? '')
    })
    child.stdout!.on('data', (chunk: Buffer) => out.add(chunk))
    child.stderr!.on('data', (chunk: Buffer) => err.add(chunk))
    child.on('error', (error) => {
      if (started) return
      done()
      reject(error)
    })
    child.on('close', (exitCode, exitSignal) => {
      done()
      // Once nothing of the group is left, no SIGKILL stays pending for a group id the system may reuse.
      if (killTimer) {
        try {
          process.kill(-child.pid!, 0)
        } catch {
          clearTimeout(killTimer)
        }
      }
      resolve({
        exitCode,
        signal: exitSignal,
        stdout: out.bytes(),
        stderr: err.bytes(),
        timedOut,
        truncated: out.over || err.over,
      })
    })
  })
}

/**
 * Why `path` may not be run as an integrator's program (binding.md §8), or `undefined` when it may: it must be
 * an absolute path to a regular file that only its owner can change, and that owner root or the agent's user.
 * Anyone else able to change it could run code as the agent.
 */
export function checkProgramFile(path: string): string | undefined {
  if (!isAbsolute(path)) return 'is not an absolute path'
  let st
  try {
    st = statSync(path)
  } catch (error) {
    return `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`
  }
  if (!st.isFile()) return 'is not a regular file'
  if (st.mode & 0o022) return 'is writable by group or others'
  const self = process.getuid?.() ?? 0
  if (st.uid !== 0 && st.uid !== self) return `is owned by uid ${st.uid}, neither root nor the agent's user`
  if (!(st.mode & 0o111)) return 'is not executable'
  return undefined
}
