/**
 * FUMO (binding.md §9, FUMO 1.0 §10): Exec of `Download`, `Update` or `DownloadAndUpdate` answers 202 and the
 * operation goes on here: download, the module's `check` and `install` (by the agent, or by the root-side
 * installer through the spool), `verify` after a restart, and one Generic Alert with the result.
 *
 * The operation lives in one agent-state slot, changed at each phase, so that whatever stops the agent (a crash,
 * a reboot, the agent being replaced by the package it installs) the next start takes it up where it was: a
 * download resumes, an install that was under way (or asked for a restart) is verified. Its end is one store
 * commit holding the final `State`, the slot cleared and the result alert queued: never none, never two.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import * as fs from 'node:fs/promises'
import { join } from 'node:path'
import type { FumoConfig } from '../config.ts'
import type { Logger } from '../log.ts'
import type { AgentState, JsonValue } from '../session/agent-state.ts'
import type { SessionManager } from '../session/manager.ts'
import type { ManagementTree } from '../tree/index.ts'
import type { NodeValue } from '../tree/types.ts'
import { discardDownload, downloadPackage, loggableUrl } from './download.ts'
import { ensureFumoNodes, FUMO_OPERATIONS, leafText, writeLeaves, type FumoOperationName } from './fumo-tree.ts'
import { checkResult, installResult, runModule, type ModuleVerb } from './module.ts'
import { FUMO_RESULT, FumoFailure, type FumoResult } from './result-codes.ts'
import { readSpoolResult, submitToSpool, SPOOL_FILES } from './spool.ts'

export interface FumoDeps {
  tree: ManagementTree
  state: AgentState
  sessions: Pick<SessionManager, 'queueGenericAlert' | 'openSession' | 'keepQueued'>
  config: FumoConfig
  /** The agent's state directory: the package is downloaded below it. */
  stateDir: string
  logger: Logger
  random: (n: number) => Uint8Array
  /** `fumo.ca`, read at start (a missing file stops the agent there, not at the first download). */
  ca?: Buffer
}

export interface Fumo {
  /** Takes up an operation a previous run left. */
  start(): void
  stop(): void
}

/** The agent-state slot of the operation (or of a downloaded package waiting for `Update`). */
export const FUMO_SLOT = 'fumo'

/** Where an operation is: what a restart resumes. */
type Phase = 'download' | 'stage' | 'install' | 'restart'

interface Operation {
  id: string
  op: FumoOperationName
  server: string
  correlator?: string
  phase: Phase
  url?: string
  sha256?: string
  /** Update of the inline `Update/PkgData`. */
  inline?: boolean
  /** The run that entered `restart`, or submitted to the spool; and when it did. */
  run?: string
  at?: number
}

type Slot = { operation: Operation } | { ready: { sha256: string } }

const POLL_MS = 1000
const DOWNLOAD = { connectTimeoutMs: 30_000, idleTimeoutMs: 30_000, retries: 3, backoff: { baseMs: 1000, capMs: 8000 } }

export function installFumo(deps: FumoDeps): Fumo | { error: string } {
  const { tree, state, sessions, config } = deps
  const root = `./FUMO/${config.name}`
  const made = ensureFumoNodes(tree, root, config.acl)
  if (!made.ok) return { error: made.error }
  const log = deps.logger.child({ module: 'fumo' })
  const hex = (n: number) => Buffer.from(deps.random(n)).toString('hex')
  /** Tells a restart from the run that asked for it. */
  const run = hex(8)
  const workDir = join(deps.stateDir, 'fumo')
  const pkgFile = join(workDir, 'package')
  const spooled = join(config.spoolDir, SPOOL_FILES.package)
  const timeoutMs = config.timeoutSeconds * 1000
  const aborter = new AbortController()
  let current: Operation | undefined
  let inlineData: Uint8Array | undefined
  let stopped = false

  const slot = (): Slot | undefined => state.slot(FUMO_SLOT) as Slot | undefined
  const setSlot = (value: Slot | undefined) => state.setSlot(FUMO_SLOT, value as unknown as JsonValue)
  const committed = (uri: string) => tree.get(uri, 'device').value
  const setState = (value: number) => writeLeaves(tree, { [`${root}/State`]: { format: 'int', data: String(value) } })
  /** The slot and State in one store commit. */
  const persist = async (operation: Operation, fumoState?: number) => {
    if (fumoState !== undefined) setState(fumoState)
    setSlot({ operation })
    await state.save()
    await tree.flush()
  }
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms).unref())

  function exec(name: FumoOperationName) {
    return (_data: string | Uint8Array | undefined, principal: { serverId: string } | 'device', correlator?: string, _signal?: AbortSignal, read?: (uri: string) => NodeValue | undefined): number => {
      if (principal === 'device') return 405
      // FUMO 10.2.1: one operation at a time; the second Exec is refused while the first goes on.
      if (current !== undefined || stopped) return 417
      const view = read ?? committed
      const text = (leaf: string) => leafText(view, `${root}/${leaf}`).trim()
      const operation: Operation = { id: hex(8), op: name, server: principal.serverId, phase: name === 'Update' ? 'stage' : 'download' }
      if (correlator !== undefined) operation.correlator = correlator
      const sha256 = text('Ext/PkgSHA256').toLowerCase()
      if (sha256 !== '') operation.sha256 = sha256
      if (name === 'Update') {
        const data = view(`${root}/Update/PkgData`)?.data
        const waiting = slot()
        if (data !== undefined && data.length > 0) {
          operation.inline = true
          inlineData = typeof data === 'string' ? Buffer.from(data, 'base64') : data
        } else if (waiting !== undefined && 'ready' in waiting) {
          operation.sha256 = waiting.ready.sha256
        } else {
          log.warn('Update refused: no package downloaded and no Update/PkgData', { server: operation.server })
          return 405
        }
      } else {
        operation.url = text(`${name}/PkgURL`)
      }
      // Persisted with the message's own changes, before its 202 leaves (the Exec counts as a write).
      setSlot({ operation })
      current = operation
      log.info('FUMO operation accepted', { op: name, server: operation.server, ...(operation.url !== undefined && { url: loggableUrl(operation.url) }) })
      // After the message that holds the Exec has run: the State write is then not part of its transaction.
      setImmediate(() => void proceed(operation))
      return 202
    }
  }

  async function proceed(operation: Operation): Promise<void> {
    try {
      const result = await advance(operation)
      if (result !== undefined) await finish(operation, result)
    } catch (error) {
      if (stopped) return
      const result = error instanceof FumoFailure ? error.result : operation.phase === 'download' ? FUMO_RESULT.NETWORK_FAILURE : FUMO_RESULT.UPDATE_FAILED
      if (!(error instanceof FumoFailure)) log.error('FUMO operation failed', { op: operation.op, error })
      else log.warn('FUMO operation failed', { op: operation.op, result, reason: error.message })
      await finish(operation, result).catch((e: unknown) => log.error('FUMO result not stored', { error: e }))
    }
  }

  /** Runs the operation from its phase on; its result, or undefined when it waits for the agent's restart. */
  async function advance(operation: Operation): Promise<FumoResult | undefined> {
    if (operation.phase === 'download') {
      await persist(operation, 30 /* Download Progressing */)
      await fs.mkdir(workDir, { recursive: true, mode: 0o700 })
      const got = await downloadPackage({
        url: operation.url ?? '', file: pkgFile, maxBytes: config.maxBytes, ...DOWNLOAD, signal: aborter.signal, log,
        ...(operation.sha256 !== undefined && { sha256: operation.sha256 }),
        ...(deps.ca !== undefined && { ca: deps.ca }),
      })
      operation.sha256 = got.sha256
      if (operation.op === 'Download') return FUMO_RESULT.SUCCESSFUL
      operation.phase = 'stage'
    }
    if (operation.phase === 'stage') {
      await persist(operation, 60 /* Update Progressing */)
      if (operation.inline === true) {
        const data = inlineData ?? committed(`${root}/Update/PkgData`)?.data ?? new Uint8Array(0)
        inlineData = undefined
        await fs.mkdir(workDir, { recursive: true, mode: 0o700 })
        await fs.writeFile(pkgFile, typeof data === 'string' ? Buffer.from(data, 'base64') : data, { mode: 0o600 })
      }
      // A package checked once is checked again as it is now: nothing installs what the server did not send.
      const sha256 = await fileSha256(pkgFile).catch(() => '')
      if (sha256 === '' || (operation.sha256 !== undefined && sha256 !== operation.sha256)) {
        throw new FumoFailure(FUMO_RESULT.CORRUPT_PACKAGE, sha256 === '' ? 'no package to install' : 'the package does not have the SHA-256 it was given')
      }
      operation.sha256 = sha256
      if (config.installer === 'direct') {
        const refused = checkResult((await module('check', pkgFile)).exitCode)
        if (refused !== undefined) return refused
      }
      operation.phase = 'install'
      operation.run = run
      operation.at = Date.now()
      await persist(operation)
      if (config.installer === 'direct') {
        const installed = await module('install', pkgFile)
        if (!installed.restart) return installResult(installed.exitCode)
        operation.phase = 'restart'
        await persist(operation)
        log.info('FUMO install done; the result waits for verify after the restart', { op: operation.op })
        return undefined
      }
      await submitToSpool(config.spoolDir, pkgFile, operation.id, sha256)
      log.info('FUMO package handed to the installer', { op: operation.op, spool: config.spoolDir })
    }
    if (operation.phase === 'install' && config.installer === 'spool') return spoolResult(operation)
    if (operation.phase === 'restart' && operation.run === run) return undefined
    // An install under way when the agent went down, or one that asked for the restart that has now come.
    return installResult((await module('verify', config.installer === 'spool' ? spooled : pkgFile)).exitCode)
  }

  async function spoolResult(operation: Operation): Promise<FumoResult | undefined> {
    // The agent went down between deciding to install and handing the package over: hand it over now.
    const handedOver = await fs.access(spooled).then(() => true, () => false)
    if (!handedOver && operation.sha256 !== undefined && (await fs.access(pkgFile).then(() => true, () => false))) {
      await submitToSpool(config.spoolDir, pkgFile, operation.id, operation.sha256)
    }
    const deadline = (operation.at ?? Date.now()) + timeoutMs + 60_000
    for (;;) {
      const result = await readSpoolResult(config.spoolResult, operation.id)
      if (result !== undefined) {
        if ('rejected' in result) throw new FumoFailure(FUMO_RESULT.CORRUPT_PACKAGE, `the installer refused the package: ${result.rejected}`)
        const refused = checkResult(result.check)
        if (refused !== undefined) return refused
        if (!result.restart || result.install !== 0) return installResult(result.install ?? 1)
        if (operation.run !== run) return installResult((await module('verify', spooled)).exitCode)
        operation.phase = 'restart'
        await persist(operation)
        return undefined
      }
      if (stopped) return undefined
      // The installer never answered (it could not run): what the device has now is what verify says.
      if (Date.now() > deadline) return installResult((await module('verify', spooled)).exitCode)
      await sleep(POLL_MS)
    }
  }

  async function module(verb: ModuleVerb, pkg: string) {
    const outcome = await runModule(config.module, verb, pkg, timeoutMs)
    log.info('FUMO module ran', { verb, exitCode: outcome.exitCode, ...(outcome.restart && { restart: true }) })
    return outcome
  }

  async function finish(operation: Operation, result: FumoResult): Promise<void> {
    if (stopped) return
    const downloadOnly = operation.op === 'Download'
    const ok = result === FUMO_RESULT.SUCCESSFUL
    const failedDownload = !ok && (operation.phase === 'download')
    // Download Complete, Download Failed, Update Successful No Data, Update Failed No Data (the package is gone).
    const fumoState = downloadOnly ? (ok ? 40 : 20) : failedDownload ? 20 : ok ? 100 : 80
    const leaves: Record<string, NodeValue> = { [`${root}/State`]: { format: 'int', data: String(fumoState) } }
    if (operation.inline === true) leaves[`${root}/Update/PkgData`] = { format: 'b64', data: new Uint8Array(0) }
    writeLeaves(tree, leaves)
    setSlot(downloadOnly && ok ? { ready: { sha256: operation.sha256 ?? '' } } : undefined)
    // One commit: the alert queued, the operation gone and its State (binding.md §9: never none, never two).
    await sessions.queueGenericAlert(operation.server, {
      type: FUMO_OPERATIONS[operation.op],
      format: 'int',
      data: String(result),
      source: `${root}/${operation.op}`,
      ...(operation.correlator !== undefined && { correlator: operation.correlator }),
    })
    await tree.flush()
    current = undefined
    log.info('FUMO operation ended', { op: operation.op, result, state: fumoState })
    if (!(downloadOnly && ok)) await Promise.all([discardDownload(pkgFile), fs.rm(spooled, { force: true })]).catch(() => undefined)
    void sessions.openSession(operation.server, { alert: 1201 })
  }

  for (const name of Object.keys(FUMO_OPERATIONS) as FumoOperationName[]) {
    tree.registerExec(`${root}/${name}`, exec(name))
    // The result alerts are never dropped from a full queue: nothing else tells the server how its update ended.
    sessions.keepQueued(FUMO_OPERATIONS[name])
  }

  return {
    start() {
      const left = slot()
      if (left === undefined || !('operation' in left)) return
      current = left.operation
      log.info('FUMO operation taken up after a restart', { op: current.op, phase: current.phase })
      void proceed(current)
    },
    stop() {
      stopped = true
      aborter.abort(new Error('the agent is stopping'))
    },
  }
}

async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}
