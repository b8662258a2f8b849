/**
 * What an idle program costs the device (on a Raspberry Pi idle is what the agent is almost always doing): CPU
 * seconds per hour and wakeups per minute, read from /proc over windows in which nothing is sent to it. A wakeup
 * is counted as a context switch of any of its threads (voluntary or not): each one is the kernel putting a thread
 * back on a CPU, a timer, a socket or a worker thread that woke.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { sleep } from '../lib/processes.ts'
import { summarize, type Summary } from '../lib/stats.ts'

export interface IdleFigures {
  cpuSecondsPerHour: Summary
  wakeupsPerMinute: Summary
}

/** USER_HZ: the unit of utime and stime in /proc/<pid>/stat on every Linux the agent runs on. */
const CLOCK_TICKS_PER_SECOND = 100

interface Counters {
  cpuTicks: number
  switches: number
}

function counters(pid: number): Counters {
  // Fields after the command name, which is in parentheses and may hold spaces: utime and stime are 14 and 15.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const cpuTicks = Number(fields[11]) + Number(fields[12])
  let switches = 0
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    let status: string
    try {
      status = readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8')
    } catch {
      continue // a thread that ended between the listing and the read
    }
    for (const match of status.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)$/gm)) switches += Number(match[1])
  }
  return { cpuTicks, switches }
}

/**
 * Measures the processes at once over `windows` consecutive windows of `windowMs`, after `settleMs` of quiet. The
 * pids must be the programs themselves (not a wrapper such as time).
 */
export async function measureIdle(
  pids: Record<string, number>,
  options: { windows: number; windowMs: number; settleMs: number },
): Promise<Record<string, IdleFigures>> {
  await sleep(options.settleMs)
  const cpu: Record<string, number[]> = {}
  const wakeups: Record<string, number[]> = {}
  for (const name of Object.keys(pids)) {
    cpu[name] = []
    wakeups[name] = []
  }
  let before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, counters(pid)]))
  for (let k = 0; k < options.windows; k++) {
    const started = performance.now()
    await sleep(options.windowMs)
    const elapsedSeconds = (performance.now() - started) / 1000
    const after = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, counters(pid)]))
    for (const name of Object.keys(pids)) {
      const spent = (after[name]!.cpuTicks - before[name]!.cpuTicks) / CLOCK_TICKS_PER_SECOND
      cpu[name]!.push((spent * 3600) / elapsedSeconds)
      wakeups[name]!.push(((after[name]!.switches - before[name]!.switches) * 60) / elapsedSeconds)
    }
    before = after
  }
  return Object.fromEntries(Object.keys(pids).map((name) => [name, { cpuSecondsPerHour: summarize(cpu[name]!), wakeupsPerMinute: summarize(wakeups[name]!) }]))
}
