/**
 * Child processes of the bench: the agent and the floor client, under `/usr/bin/time -v` when their peak RSS
 * is wanted. GNU time ignores SIGINT while it waits, so SIGINT to the process group stops the program cleanly
 * and time still reports. It reports into a file of its own (`-o`): on the stderr it shares with the program,
 * its write can fail once the program has left that pipe non-blocking (Bun does), and then time exits 1 with
 * no report at all.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const TIME = '/usr/bin/time'

/** Process groups still running: killed when the bench exits, however it exits, so none outlives it. */
const groups = new Set<number>()
process.on('exit', () => {
  for (const pid of groups) {
    try {
      process.kill(-pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
})

export interface Running {
  child: ChildProcess
  /** Resolves on exit with the peak RSS in KiB when run under time, and stderr. */
  exited: Promise<{ code: number | null; peakRssKb?: number; stderr: string }>
  /** SIGINT to the whole group; resolves on exit. */
  stop(): Promise<{ code: number | null; peakRssKb?: number; stderr: string }>
}

export function run(command: string, args: string[], options: { timed?: boolean; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Running {
  const reportDir = options.timed ? mkdtempSync(join(tmpdir(), 'gwmo-bench-time-')) : undefined
  const report = reportDir === undefined ? undefined : join(reportDir, 'time.txt')
  const [file, argv] = report !== undefined ? [TIME, ['-v', '-o', report, command, ...args]] : [command, args]
  const child = spawn(file, argv, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'ignore', 'pipe'], detached: true })
  const pid = child.pid
  if (pid !== undefined) groups.add(pid)
  let stderr = ''
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const exited = new Promise<{ code: number | null; peakRssKb?: number; stderr: string }>((resolve) => {
    child.on('close', (code) => {
      if (pid !== undefined) groups.delete(pid)
      let timed = ''
      if (reportDir !== undefined) {
        try {
          timed = readFileSync(report!, 'utf8')
        } catch {
          // no report: the figure has one sample fewer
        }
        rmSync(reportDir, { recursive: true, force: true })
      }
      const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(timed)
      resolve({ code, ...(rss && { peakRssKb: Number(rss[1]) }), stderr })
    })
  })
  const stop = () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGINT')
      } catch {
        // already gone
      }
      const force = setTimeout(() => child.pid !== undefined && process.kill(-child.pid, 'SIGKILL'), 10_000)
      void exited.then(() => clearTimeout(force))
    }
    return exited
  }
  return { child, exited, stop }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
