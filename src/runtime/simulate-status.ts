/**
 * The fleet simulator's live status: on a terminal one line rewritten in place every second; otherwise (a log
 * file, a pipe) a plain line every `everySeconds`, so a log does not fill with progress.
 */
import type { FleetObserver } from './simulate-observe.ts'

export interface StatusStream {
  isTTY?: boolean
  write(text: string): unknown
}

export function statusLine(observer: FleetObserver): string {
  const { counts } = observer
  const sessions = counts.sessions
  const failed = (sessions.failed ?? 0) + (sessions.aborted ?? 0)
  const seconds = Math.round((observer.now() - observer.startedAt) / 1000)
  return `${seconds}s: devices online ${counts.online}/${counts.devices}, sessions ${sessions.completed ?? 0} done ${failed} failed, ` +
    `detections answered ${counts.detectionsAnswered}, alerts delivered ${counts.alertsDelivered}`
}

/** Starts writing; the returned function writes the last line and stops. */
export function startStatus(observer: FleetObserver, stream: StatusStream, everySeconds: number): () => void {
  const tty = stream.isTTY === true
  // ANSI: carriage return and erase the line, so the next status replaces this one.
  const write = () => stream.write(tty ? `\r\u001b[2K${statusLine(observer)}` : `${statusLine(observer)}\n`)
  const timer = setInterval(write, tty ? 1000 : everySeconds * 1000)
  timer.unref()
  return () => {
    clearInterval(timer)
    write()
    if (tty) stream.write('\n')
  }
}
