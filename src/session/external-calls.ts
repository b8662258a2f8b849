/**
 * The calls a command makes to a node that lives outside the tree (binding.md §8, src/tree/external.ts): a Get
 * reads it through `get`; a Replace writes it through `replace` once the commands it depends on have all
 * succeeded (the message's, made durable, or its Atomic's); an Atomic whose write fails sets the ones already
 * made back to the values read before them. A callback's failure is its command's status (`statusOfError`),
 * logged in one line; the agent goes on.
 */
import type { Status } from '../codec/syncml-model.ts'
import { statusOfError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { checkLeafData } from '../tree/formats.ts'
import type { ExternalCall, ExternalValue, MountedNode, NodeValue } from '../tree/index.ts'
import { byteLength } from '../tree/node.ts'
import { ENTITY_TOO_LARGE } from './size.ts'

/** A Replace's write to an external node, waiting for the commands it depends on. */
export interface ExternalWrite {
  mounted: MountedNode
  value: ExternalValue
  call: ExternalCall
  /** The Replace's Status in the reply (none under NoResp): its code is set once the write is done. */
  status: Status | undefined
  /** A stored leaf's value before the Replace (a node without `get`): what a failed write sets it back to. */
  stored?: NodeValue | undefined
}

const STOPPING = 'the agent is stopping'

/** Awaits a callback, but no longer than the agent runs: once `signal` aborts, the call has failed. */
function bounded<T>(work: () => Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error(STOPPING))
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error(STOPPING))
    signal.addEventListener('abort', onAbort, { once: true })
    new Promise<T>((run) => run(work())).then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

/** A failed call's status, logged once. */
function failed(logger: Logger, what: string, uri: string, error: unknown): number {
  const status = statusOfError(error)
  logger.warn(what, { uri, status, error })
  return status
}

export type ReadOutcome = { status: 200; data: string | Uint8Array | undefined } | { status: number; data?: undefined }

/** Reads a node through its `get`: the value as the node's format stores it, or the status that refuses it. */
export async function readExternal(mounted: MountedNode, call: ExternalCall, logger: Logger): Promise<ReadOutcome> {
  const { uri } = mounted
  let value: unknown
  try {
    value = await bounded(() => mounted.node.get!(call), call.signal)
  } catch (error) {
    return { status: failed(logger, 'external node read failed', uri, error) }
  }
  const checked = typeof value === 'string' || value instanceof Uint8Array ? checkLeafData(mounted.format, value) : undefined
  if (checked === undefined) {
    logger.warn('external node read a value that does not fit its format', { uri, format: mounted.format })
    return { status: 500 }
  }
  if (byteLength(checked.data) > mounted.maxBytes) {
    logger.warn('external node read a value over its maxBytes', { uri, maxBytes: mounted.maxBytes })
    return { status: ENTITY_TOO_LARGE }
  }
  return { status: 200, data: checked.data }
}

async function write(w: ExternalWrite, logger: Logger): Promise<number> {
  try {
    await bounded(() => w.mounted.node.replace!(w.value, w.call), w.call.signal)
    return 200
  } catch (error) {
    return failed(logger, 'external node write failed', w.mounted.uri, error)
  }
}

function answer(w: ExternalWrite, code: number): void {
  if (w.status !== undefined) w.status.data = String(code)
}

/** Outside an Atomic: each write in command order, each answered on its own. Gives the ones that failed. */
export async function runWrites(writes: readonly ExternalWrite[], logger: Logger): Promise<ExternalWrite[]> {
  const failures: ExternalWrite[] = []
  for (const w of writes) {
    const code = await write(w, logger)
    answer(w, code)
    if (code !== 200) failures.push(w)
  }
  return failures
}

/** A write made, and the value it replaced. */
export interface MadeWrite {
  write: ExternalWrite
  before: ExternalValue
}

/**
 * An Atomic's writes, in command order, each after reading the value it replaces (`get`, or the stored value).
 * When one fails (its read or its write), it is answered with its status and the ones already made are set back.
 */
export async function runAtomicWrites(writes: readonly ExternalWrite[], logger: Logger): Promise<{ ok: true; made: MadeWrite[] } | { ok: false }> {
  const made: MadeWrite[] = []
  for (const w of writes) {
    let before: ExternalValue = w.stored?.data ?? ''
    const get = w.mounted.node.get
    let code = 200
    if (get !== undefined) {
      try {
        before = await bounded(() => get.call(w.mounted.node, w.call), w.call.signal)
      } catch (error) {
        code = failed(logger, 'external node not read before its write', w.mounted.uri, error)
      }
    }
    if (code === 200) code = await write(w, logger)
    if (code !== 200) {
      answer(w, code)
      await setBack(made, logger)
      return { ok: false }
    }
    made.push({ write: w, before })
  }
  return { ok: true, made }
}

/** Sets writes already made back to the values read before them, the last first; a failure is an error. */
export async function setBack(made: readonly MadeWrite[], logger: Logger): Promise<void> {
  for (const { write: w, before } of [...made].reverse()) {
    try {
      await bounded(() => w.mounted.node.replace!(before, w.call), w.call.signal)
    } catch (error) {
      logger.error('external node not set back after its Atomic failed', { uri: w.mounted.uri, error })
    }
  }
}
