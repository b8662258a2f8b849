/**
 * Location Update (binding.md §4.6; GwMO seed 001, 8.4.1 figure 10): the device watches its network location and,
 * when it changes, tells every DM Server with a Generic Alert `urn:oma:gwmo:1.0:LocationUpdate` in a session
 * with each. The last location is persisted in the agent state, so a restart in the same place reports nothing.
 *
 * What counts as a change: other addresses (compared as a set), another default gateway, or an accepted Device
 * Detection from a gateway other than the last one. What does not:
 * - the first reading of a device that has no recorded location (a factory start): there is nothing to compare
 *   with, and the servers learn the device's address from its sessions anyway; it is recorded only;
 * - the first gateway that ever detects the device: the detection's own alerts (Bootstrapped DMS List, and
 *   Associated Gateway when sharing is allowed) already tell what there is to tell;
 * - a reading with no address at all: the device is off the network (a link flap, a DHCP renewal), which is
 *   not a new place; the comparison waits for a reading with addresses, so flapping reports nothing;
 * - a source that cannot be read: logged, and that poll skipped.
 * The Location Update carries the current gateway's address only if that gateway allowed sharing. A gateway
 * stops being current when the default gateway changes (it served the network the device left) and becomes
 * current again when it detects the device anew.
 */
import type { LocationUpdate } from '../codec/gwmo.ts'
import type { Logger } from '../log.ts'
import type { AgentState, Clock, JsonValue } from '../session/index.ts'
import { normalizeLocation, type LocationSource, type NetworkLocation } from './location-source.ts'

/** The gateway that detected the device: its party (LocURI), the address it sent, and whether it may be shared. */
export interface GatewaySighting {
  id: string
  address: string
  share: boolean
}

/** What the agent state holds in the `LOCATION_SLOT` slot. */
export interface LocationRecord {
  location?: NetworkLocation
  gateway?: GatewaySighting & { current: boolean }
}

export const LOCATION_SLOT = 'gwmo.location'

export type LocationOutcome = 'recorded' | 'unchanged' | 'changed' | 'skipped'

export interface LocationMonitorOptions {
  source: LocationSource
  state: AgentState
  clock: Clock
  /** `location.pollSeconds`. */
  pollSeconds: number
  /** Queues the Location Update for every DM Server and opens a session with each. */
  report(update: LocationUpdate): Promise<void>
  logger: Logger
}

export class LocationMonitor {
  readonly #options: LocationMonitorOptions
  readonly #logger: Logger
  /** Polls and detections run one at a time, each on the record the previous one left. */
  #queue: Promise<unknown> = Promise.resolve()
  #timer: unknown
  #running = false
  /** Bumped by every start and stop, so that a poll loop from before a restart never schedules itself again. */
  #generation = 0
  /** The source failed at the last look: the next failure is not worth another warning. */
  #unavailable = false

  constructor(options: LocationMonitorOptions) {
    this.#options = options
    this.#logger = options.logger
  }

  /** Checks now, then every `pollSeconds` after each check ends. */
  start(): void {
    if (this.#running) return
    this.#running = true
    this.#tick(++this.#generation)
  }

  /** Stops polling; resolves once the check or detection under way (if any) has ended. */
  async stop(): Promise<void> {
    this.#running = false
    this.#generation++
    if (this.#timer !== undefined) this.#options.clock.clearTimeout(this.#timer)
    this.#timer = undefined
    await this.#queue
  }

  /** One look at the location, compared with the recorded one. */
  check(): Promise<LocationOutcome> {
    return this.#serialize(() => this.#check())
  }

  /** An accepted Device Detection: a gateway other than the last one is a change of location. */
  gatewayDetected(sighting: GatewaySighting): Promise<LocationOutcome> {
    return this.#serialize(() => this.#detected(sighting))
  }

  /** The persisted record (for the detection's logs and for tests). */
  recorded(): LocationRecord {
    return readRecord(this.#options.state.slot(LOCATION_SLOT))
  }

  #tick(generation: number): void {
    this.check()
      .catch((error: unknown) => this.#logger.error('location check failed', { error }))
      .finally(() => {
        if (generation !== this.#generation) return
        this.#timer = this.#options.clock.setTimeout(() => {
          this.#timer = undefined
          if (generation === this.#generation) this.#tick(generation)
        }, this.#options.pollSeconds * 1000)
      })
  }

  #serialize<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task)
    this.#queue = run.catch(() => undefined)
    return run
  }

  async #read(): Promise<NetworkLocation | undefined> {
    let reading: NetworkLocation
    try {
      reading = normalizeLocation(await this.#options.source.read())
    } catch (error) {
      if (this.#unavailable) this.#logger.debug('network location still unavailable', { error })
      else this.#logger.warn('network location unavailable', { error })
      this.#unavailable = true
      return undefined
    }
    if (this.#unavailable) this.#logger.info('network location available again')
    this.#unavailable = false
    if (reading.addresses.length === 0) {
      this.#logger.debug('no network address: location check waits for one')
      return undefined
    }
    return reading
  }

  async #check(): Promise<LocationOutcome> {
    const now = await this.#read()
    if (now === undefined) return 'skipped'
    const record = this.recorded()
    const last = record.location
    if (last === undefined) {
      record.location = now
      await this.#save(record)
      this.#logger.info('network location recorded', { addresses: now.addresses.length })
      return 'recorded'
    }
    if (sameLocation(last, now)) return 'unchanged'
    if (record.gateway && last.defaultGateway !== undefined && now.defaultGateway !== undefined &&
      last.defaultGateway !== now.defaultGateway) {
      record.gateway.current = false
    }
    record.location = now
    await this.#save(record)
    this.#logger.info('network location changed', { addresses: now.addresses.length })
    await this.#report(record)
    return 'changed'
  }

  async #detected(sighting: GatewaySighting): Promise<LocationOutcome> {
    const now = await this.#read()
    const record = this.recorded()
    const previous = record.gateway
    const otherGateway = previous !== undefined && (previous.id !== sighting.id || previous.address !== sighting.address)
    const moved = now !== undefined && record.location !== undefined && !sameLocation(record.location, now)
    const unchanged = previous !== undefined && !otherGateway && previous.share === sighting.share && previous.current && !moved
    if (unchanged) return 'unchanged'
    record.gateway = { ...sighting, current: true }
    if (now !== undefined) record.location = now
    await this.#save(record)
    if (!(otherGateway || moved) || record.location === undefined) return 'recorded'
    this.#logger.info('network location changed: detected by another gateway', { gateway: sighting.id })
    await this.#report(record)
    return 'changed'
  }

  #save(record: LocationRecord): Promise<void> {
    // setSlot stores a JSON copy: the record's unset keys drop out, and later changes to it do not leak in.
    this.#options.state.setSlot(LOCATION_SLOT, record as JsonValue)
    return this.#options.state.save()
  }

  #report(record: LocationRecord): Promise<void> {
    const gateway = record.gateway
    const update: LocationUpdate = { devAddresses: [...(record.location?.addresses ?? [])] }
    if (gateway !== undefined && gateway.current && gateway.share) update.gwAddress = gateway.address
    return this.#options.report(update)
  }
}

/** Both are normalized (sorted, deduplicated, keys in one order), so equal text is the same place. */
function sameLocation(a: NetworkLocation, b: NetworkLocation): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

/** The record from the slot; anything unreadable counts as nothing recorded (it is rewritten at the next change). */
function readRecord(value: JsonValue | undefined): LocationRecord {
  const record: LocationRecord = {}
  if (!isObject(value)) return record
  const location = value.location
  if (isObject(location) && Array.isArray(location.addresses) && location.addresses.every((a) => typeof a === 'string')) {
    const reading: NetworkLocation = { addresses: location.addresses as string[] }
    if (typeof location.defaultGateway === 'string') reading.defaultGateway = location.defaultGateway
    record.location = normalizeLocation(reading)
  }
  const gateway = value.gateway
  if (isObject(gateway) && typeof gateway.id === 'string' && typeof gateway.address === 'string' &&
    typeof gateway.share === 'boolean') {
    record.gateway = { id: gateway.id, address: gateway.address, share: gateway.share, current: gateway.current !== false }
  }
  return record
}

function isObject(value: JsonValue | undefined): value is { [key: string]: JsonValue } {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
