/**
 * What a simulated fleet saw, for its live status and its report (`simulate-status.ts`, `simulate-report.ts`):
 * each device's port is watched (`watch`), and each session's end is told (`sessionEnded`). Nothing is decoded
 * again: the watch looks at the bytes going by for the marks of a Generic Alert and of the Bootstrapped DMS List.
 * It watches the port the fleet gives each device, its MQTT traffic: a session with a server reached over HTTP
 * is counted by outcome, its messages are not seen.
 *
 * The exchanges it times:
 * - `answer`: a device's DM message to a party, to the next DM message that reaches the device (the party's
 *   turn and two broker hops; a message sent again is timed from its first sending). A device in sessions with
 *   two parties at once has its answers matched to the party waiting longest.
 * - `detection`: the message that reaches a device before its Bootstrapped DMS List, to the broker's
 *   acknowledgement of that list (GwMO 8.6.1.3: the device answers a Device Detection Alert with it).
 * - `session`: a session's first message from the device, to its end (a session the party opened by a
 *   notification is timed from the device's first message too).
 */
import type { OutboundMessage, Transport, TransportEvents, InboundMessage } from '../session/port.ts'
import type { SessionEndInfo } from '../session/index.ts'
import { crc32 } from '../store/crc32.ts'

export const EXCHANGES = ['answer', 'detection', 'session'] as const
export type ExchangeName = (typeof EXCHANGES)[number]

/** The type of a Bootstrapped DMS List alert (GwMO seed 8.6.1.3), as it stands in XML and in WBXML. */
const DMS_LIST = Buffer.from('urn:oma:gwmo:1.0:BootstrappedDMSList')
/** A Generic Alert's code as the Data of an Alert: `>1226<` in XML, an inline string (STR_I … 0) in WBXML. */
const GENERIC_ALERT = [Buffer.from('>1226<'), Buffer.from('\u00031226\u0000', 'latin1')]

function occurrences(bytes: Buffer, what: Buffer): number {
  let count = 0
  for (let at = bytes.indexOf(what); at !== -1; at = bytes.indexOf(what, at + what.length)) count++
  return count
}

/** A session in progress with one party, as the device's messages show it. */
interface Talk {
  startedAt: number
  /** When the message now waiting for its answer was first sent, if one is. */
  waitingSince: number | undefined
  /** The last message's CRC and length: the same message sent again is not counted again. */
  last: number
  lastLength: number
  alerts: number
}

export interface Counts {
  devices: number
  online: number
  /** Sessions ended, by outcome (`completed`, `failed`, `aborted`, `rejected`, `stopped`). */
  sessions: Record<string, number>
  detectionsAnswered: number
  /** Generic Alerts in sessions that completed (the server answered them), and in those that did not. */
  alertsDelivered: number
  alertsUndelivered: number
  messagesSent: number
  messagesResent: number
  messagesReceived: number
}

export class FleetObserver {
  readonly counts: Counts = {
    devices: 0,
    online: 0,
    sessions: {},
    detectionsAnswered: 0,
    alertsDelivered: 0,
    alertsUndelivered: 0,
    messagesSent: 0,
    messagesResent: 0,
    messagesReceived: 0,
  }
  /** Latencies in milliseconds, by exchange. */
  readonly samples: Record<ExchangeName, number[]> = { answer: [], detection: [], session: [] }
  readonly startedAt: number

  constructor(readonly now: () => number = () => performance.now()) {
    this.startedAt = now()
  }

  /** The port a device uses: `inner`, watched. */
  watch(inner: Transport): DeviceWatch {
    this.counts.devices++
    return new DeviceWatch(this, inner)
  }

  /** Told by the device's session manager. */
  sessionEnded(watch: DeviceWatch, info: SessionEndInfo): void {
    const { counts } = this
    counts.sessions[info.outcome] = (counts.sessions[info.outcome] ?? 0) + 1
    const talk = watch.talks?.get(info.serverId)
    if (talk === undefined) return
    watch.talks!.delete(info.serverId)
    // Most devices are idle most of the time: an empty map would be some 200 bytes each for nothing.
    if (watch.talks!.size === 0) watch.talks = undefined
    this.samples.session.push(this.now() - talk.startedAt)
    if (info.outcome === 'completed') counts.alertsDelivered += talk.alerts
    else counts.alertsUndelivered += talk.alerts
  }
}

/** One device's port, watched: a small object with its methods on the prototype, as the port it wraps. */
export class DeviceWatch implements Transport {
  /** Sessions in progress, by party; none most of the time. */
  talks: Map<string, Talk> | undefined
  online = false
  /** When the device last received a DM message. */
  lastReceived = 0

  constructor(
    private readonly observer: FleetObserver,
    private readonly inner: Transport,
  ) {}

  start(events: TransportEvents): Promise<void> {
    const { counts, now } = this.observer
    return this.inner.start({
      message: (message: InboundMessage) => {
        if (message.channel === 'dm') {
          counts.messagesReceived++
          this.lastReceived = now()
          this.answered(this.lastReceived)
        }
        events.message(message)
      },
      online: () => {
        if (!this.online) counts.online++
        this.online = true
        events.online()
      },
      offline: () => {
        if (this.online) counts.online--
        this.online = false
        events.offline()
      },
    })
  }

  send(message: OutboundMessage): Promise<void> {
    const { observer } = this
    const { counts, now } = observer
    const payload = Buffer.from(message.payload.buffer, message.payload.byteOffset, message.payload.byteLength)
    const at = now()
    const talks = (this.talks ??= new Map())
    let talk = talks.get(message.to)
    const crc = crc32(payload)
    const again = talk !== undefined && talk.last === crc && talk.lastLength === payload.length
    if (again) counts.messagesResent++
    else {
      counts.messagesSent++
      if (talk === undefined) talks.set(message.to, (talk = { startedAt: at, waitingSince: undefined, last: 0, lastLength: 0, alerts: 0 }))
      talk.last = crc
      talk.lastLength = payload.length
      talk.waitingSince = at
      for (const mark of GENERIC_ALERT) talk.alerts += occurrences(payload, mark)
    }
    const sent = this.inner.send(message)
    if (again || payload.indexOf(DMS_LIST) === -1) return sent
    const since = this.lastReceived
    return sent.then(() => {
      counts.detectionsAnswered++
      if (since > 0) observer.samples.detection.push(now() - since)
    })
  }

  stop(): Promise<void> {
    if (this.online) this.observer.counts.online--
    this.online = false
    return this.inner.stop()
  }

  /** A DM message reached the device: it answers the message waiting longest. */
  private answered(at: number): void {
    let oldest: Talk | undefined
    for (const talk of this.talks?.values() ?? []) {
      if (talk.waitingSince !== undefined && (oldest === undefined || talk.waitingSince < oldest.waitingSince!)) oldest = talk
    }
    if (oldest === undefined) return
    this.observer.samples.answer.push(at - oldest.waitingSince!)
    oldest.waitingSince = undefined
  }
}
