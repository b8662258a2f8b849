/**
 * The GwMO 1.0 End Device behaviours (binding.md §4), installed on a session manager: the single entry the
 * runtime calls. The DM channel goes to the session manager itself; this layer takes the `notification` and
 * `bootstrap` channels, registers the Device Detection Alert, and watches the network location.
 *
 * Gateway bootstrap by a DM Server (seed 001, 8.4.1; binding.md §4.5) needs no code of its own: the seed says when
 * a server *may* add the gateway's account (in its first session with the device, or in a session reporting a
 * Location Update), and the device lets the tree decide whether it can, as DM 1.2 does for every write. The
 * standard tree's ACL lets a DM Server `Add` an account under `./DMAcc` (a factory bootstrap may narrow it), and
 * the tree's rules of `./DMAcc` (binding.md §6, tree/dmacc-access.ts) take only a gateway's account
 * (`Ext/GwMO/Role` = `gateway`) from it, give that account to the gateway, and let no gateway add or change any.
 * Refusing such an Add in other sessions would break a server whose first session failed half-way and that
 * sends the account again later, and would gate the tree by session history, which no DM 1.2 server expects.
 * Once stored, the account is a party like any other: its detections are accepted when it authenticates.
 */
import { MIN_USERPIN_LENGTH, userPinTooShort } from '../auth/bootstrap-mac.ts'
import { buildGwAddress, buildLocationUpdate, GWMO_ALERT_TYPE, type LocationUpdate } from '../codec/gwmo.ts'
import type { Logger } from '../log.ts'
import type { AgentState, Clock, SessionManager } from '../session/index.ts'
import type { InboundMessage } from '../session/port.ts'
import type { BootstrapTarget } from '../tree/bootstrap.ts'
import type { TreeOps } from '../tree/types.ts'
import { BootstrapThrottle } from './bootstrap-throttle.ts'
import { dmServers, gwmoAlert, registerDetection, type AcceptDetectionFrom, type AcceptedDetection } from './detection.ts'
import { handleLocalBootstrap, type LocalBootstrapOutcome } from './local-bootstrap.ts'
import { fileLocationSource, osLocationSource, type LocationSource } from './location-source.ts'
import { LocationMonitor } from './location.ts'
import { NotificationHandler, type NotificationOutcome } from './transparent.ts'

export interface GwmoLocationConfig {
  /** Seconds between two looks at the network location. */
  pollSeconds: number
  /** False: no polling (a detection by another gateway is still reported). Default true. */
  enabled?: boolean
  /** A JSON file `{ "addresses": [...], "defaultGateway": "…" }` to read instead of the OS. */
  sourceFile?: string
}

export interface GwmoConfig {
  acceptDetectionFrom: AcceptDetectionFrom
  /** Device Detection Alerts taken from one gateway a minute (binding.md §11, `limits.detectionsPerMinute`). */
  detectionsPerMinute?: number
  userPin?: string
  networkId?: string
  location: GwmoLocationConfig
}

/** The GwMO alerts that wait one per server (binding.md §11). */
const COALESCED = [GWMO_ALERT_TYPE.ASSOCIATED_GATEWAY, GWMO_ALERT_TYPE.LOCATION_UPDATE]

export interface GwmoDeps {
  sessions: Pick<SessionManager, 'openSession' | 'queueGenericAlert' | 'registerAlert' | 'keepQueued' | 'inOrder'>
  tree: TreeOps & BootstrapTarget & { flush(): Promise<void> }
  state: AgentState
  deviceId: string
  config: GwmoConfig
  /** Overrides the source the configuration names (tests). */
  location?: LocationSource
  clock: Clock
  logger: Logger
}

export interface Gwmo {
  /** A message of the `notification` channel (transparent mode). Never rejects. */
  onNotification(inbound: InboundMessage): Promise<NotificationOutcome>
  /** A message of the `bootstrap` channel (local DM Bootstrap Server). Never rejects; nothing is ever answered. */
  onBootstrap(inbound: InboundMessage): Promise<LocalBootstrapOutcome>
  /** Starts watching the network location. */
  start(): void
  /** Stops watching, and waits for the work already begun (alerts being queued, sessions being opened). */
  stop(): Promise<void>
  /** The location monitor (its record, a check on demand). */
  readonly location: LocationMonitor
}

export function installGwmo(deps: GwmoDeps): Gwmo {
  const { sessions, tree, deviceId, config } = deps
  const logger = deps.logger.child({ module: 'gwmo' })
  /** Work under way; made when some begins and dropped when none is left (a fleet's devices are mostly idle). */
  let inFlight: Set<Promise<unknown>> | undefined
  let stopped = false

  function track(work: Promise<unknown>, what: string): void {
    const guarded = work.catch((error: unknown) => logger.error(`${what} failed`, { error }))
    ;(inFlight ??= new Set()).add(guarded)
    void guarded.finally(() => {
      inFlight?.delete(guarded)
      if (inFlight?.size === 0) inFlight = undefined
    })
  }

  // binding.md §11: one Associated Gateway and one Location Update wait per server, the newest; so they are never
  // dropped from a full queue (they tell the server what nothing else will tell it again).
  for (const type of COALESCED) sessions.keepQueued(type)

  /**
   * Queues (persisted) the alert for every server first, then opens the sessions that carry them. The alert
   * replaces any of its type still waiting for that server (binding.md §11: the newest replaces the older), so a
   * flood of detections or moves leaves one of each per server; an equal one waiting already stays as it is.
   */
  async function reportTo(servers: string[], type: string, data: string): Promise<void> {
    for (const serverId of servers) {
      const waiting = deps.state.pendingAlerts(serverId).filter((p) => p.alert.type === type)
      const same = waiting.at(-1)?.alert.data === data
      // Removing and queueing run without a pause between them: a concurrent report finds one of them or the other.
      let removed = false
      for (const older of same ? waiting.slice(0, -1) : waiting) removed = deps.state.removeAlert(serverId, older.id) || removed
      if (!same) await sessions.queueGenericAlert(serverId, gwmoAlert(type, data, deviceId, serverId))
      else if (removed) await deps.state.save()
    }
    for (const serverId of servers) track(sessions.openSession(serverId, { alert: 1201 }), 'session open')
  }

  const source = deps.location ??
    (config.location.sourceFile !== undefined ? fileLocationSource(config.location.sourceFile) : osLocationSource())
  const monitor = new LocationMonitor({
    source,
    state: deps.state,
    clock: deps.clock,
    pollSeconds: config.location.pollSeconds,
    logger: logger.child({ behaviour: 'location' }),
    report: (update: LocationUpdate) => reportTo(dmServers(tree), GWMO_ALERT_TYPE.LOCATION_UPDATE, buildLocationUpdate(update)),
  })

  registerDetection(sessions, {
    deviceId,
    acceptDetectionFrom: config.acceptDetectionFrom,
    ...(config.detectionsPerMinute !== undefined && { detectionsPerMinute: config.detectionsPerMinute }),
    now: () => deps.clock.now(),
    logger: logger.child({ behaviour: 'detection' }),
    onAccepted: (accepted: AcceptedDetection) => {
      if (stopped) return
      // binding.md §4.3, seed 000 8.6.1.3 step 3: only with Share true does the address go to each listed server.
      const { gatewayId, gwAddress, share, servers } = accepted
      if (share) track(reportTo(servers, GWMO_ALERT_TYPE.ASSOCIATED_GATEWAY, buildGwAddress(gwAddress)), 'associated gateway')
      track(monitor.gatewayDetected({ id: gatewayId, address: gwAddress, share }), 'location update')
    },
  })

  // The bootstrap's SEC methods get their two secrets, not the whole configuration.
  const secrets = { userPin: config.userPin, networkId: config.networkId }
  if (userPinTooShort(secrets)) {
    // binding.md §6: said once, at start; the PIN itself (and its length) stays out of the log.
    logger.warn(`SEC=USERPIN bootstraps refused: the configured userPin is shorter than ${MIN_USERPIN_LENGTH} characters (NETWORKID and USERPIN_NETWORKID are not affected)`)
  }
  // Made on the first bootstrap, like the notification handler below: most devices of a fleet never get one.
  let throttle: BootstrapThrottle | undefined

  // Made on the first notification: most devices of a fleet never get one, and its bookkeeping is per device.
  let notifications: NotificationHandler | undefined
  const notificationHandler = () =>
    (notifications ??= new NotificationHandler({
      tree,
      state: deps.state,
      openSession: (serverId, request) => sessions.openSession(serverId, request),
      inOrder: (serverId, task) => sessions.inOrder(serverId, task),
      now: () => deps.clock.now(),
      logger: logger.child({ behaviour: 'transparent' }),
    }))

  return {
    location: monitor,
    async onNotification(inbound) {
      try {
        return await notificationHandler().handle(inbound)
      } catch (error) {
        logger.error('notification handling failed', { error })
        return { ok: false, reason: 'malformed' }
      }
    },
    async onBootstrap(inbound) {
      try {
        return await handleLocalBootstrap(inbound, {
          tree,
          deviceId,
          secrets,
          openSession: (serverId) => sessions.openSession(serverId, { alert: 1201 }),
          throttle: (throttle ??= new BootstrapThrottle(() => deps.clock.now())),
          logger: logger.child({ behaviour: 'bootstrap' }),
        })
      } catch (error) {
        logger.error('bootstrap handling failed', { error })
        return { ok: false, stage: 'apply', reason: 'internal error' }
      }
    },
    start() {
      if (stopped || config.location.enabled === false) return
      monitor.start()
    },
    async stop() {
      stopped = true
      await monitor.stop()
      while (inFlight !== undefined && inFlight.size > 0) await Promise.allSettled([...inFlight])
    },
  }
}

export type { AcceptDetectionFrom, AcceptedDetection } from './detection.ts'
export type { LocalBootstrapOutcome } from './local-bootstrap.ts'
export type { LocationSource, NetworkLocation } from './location-source.ts'
export { fileLocationSource, osLocationSource } from './location-source.ts'
export type { NotificationOutcome } from './transparent.ts'
