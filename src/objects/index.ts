/**
 * The integrator's objects (binding.md §8) mounted in the tree as external nodes (tree/external.ts): the tree
 * applies ACLs, formats and sizes, the session calls the backings around the message's transaction.
 */
import type { Logger } from '../log.ts'
import type { AgentState } from '../session/index.ts'
import type { ExternalCall, ExternalNode, ExternalValue, ManagementTree } from '../tree/index.ts'
import { readValue, writeValue } from './backing.ts'
import { Execs, type ExecDeps } from './exec.ts'
import type { ObjectSpec } from './spec.ts'

export { parseObjects, readObjectsDir, OBJECT_DEFAULTS, type ObjectSpec, type Backing } from './spec.ts'

/** The callbacks behind one object. */
export function objectNode(spec: ObjectSpec, execs: Execs): ExternalNode {
  // A written file with no `read` is read back from the same file; a written program's last value is the tree's.
  const read = spec.read ?? (spec.write?.file !== undefined ? spec.write : undefined)
  const { write, exec } = spec
  return {
    // A failure's status and reason are thrown: the session answers it and logs it, once.
    ...(read && { get: (call: ExternalCall) => readValue(spec, read, call) }),
    ...(write && { replace: (value: ExternalValue, call: ExternalCall) => writeValue(spec, write, value, call) }),
    ...(exec && { exec: (data: ExternalValue | undefined, call: ExternalCall) => execs.exec(spec, data, call) }),
  }
}

export interface DeviceObjects {
  /** Ends the programs of asynchronous Execs still running (reported at the next start). */
  stop(): void
}

/**
 * Mounts every object and reports the asynchronous Execs the last run did not see end; before any session, so
 * that the start's sessions deliver those reports. The error names the object's path.
 */
export async function installObjects(
  tree: ManagementTree, specs: readonly ObjectSpec[], deps: Omit<ExecDeps, 'stopped'>,
): Promise<{ ok: true; objects: DeviceObjects } | { ok: false; error: string }> {
  const stopping = new AbortController()
  const logger = deps.logger.child({ module: 'objects' })
  const execs = new Execs({ ...deps, logger, stopped: stopping.signal })
  for (const spec of specs) {
    const shape = {
      format: spec.format,
      maxBytes: spec.maxBytes,
      ...(spec.type !== undefined && { type: spec.type }),
      ...(spec.acl !== undefined && { acl: spec.acl }),
      ...(spec.value !== undefined && { value: spec.value }),
    }
    const mounted = tree.mount(spec.path, shape, objectNode(spec, execs))
    if (!mounted.ok) return { ok: false, error: `objects: ${mounted.error}` }
  }
  try {
    await removeStale(tree, specs, deps.state, logger)
    await execs.resume()
  } catch (error) {
    return { ok: false, error: `stateDir: cannot write the agent state (${(error as NodeJS.ErrnoException).code ?? 'error'})` }
  }
  return { ok: true, objects: { stop: () => stopping.abort() } }
}

/** The agent-state slot of the paths the configuration's objects had at the last start. */
const PATHS_SLOT = 'objects.paths'

/**
 * An object taken out of the configuration leaves the tree with it at the next start (with what it stored), so
 * that a server reading the device sees what it serves now. Only the nodes the configuration once declared: the
 * interior nodes on their way may hold a server's own nodes, and stay.
 */
async function removeStale(tree: ManagementTree, specs: readonly ObjectSpec[], state: AgentState, logger: Logger): Promise<void> {
  const now = specs.map((spec) => spec.path)
  const before = state.slot(PATHS_SLOT)
  for (const path of Array.isArray(before) ? before : []) {
    if (typeof path !== 'string' || now.includes(path) || tree.external(path) !== undefined) continue
    const status = tree.delete(path, 'device')
    if (status === 200) logger.info('object no longer configured: removed from the tree', { uri: path })
    else if (status !== 404) logger.warn('object no longer configured, but its node could not be removed', { uri: path, status })
  }
  if (JSON.stringify(before ?? []) === JSON.stringify(now)) return
  state.setSlot(PATHS_SLOT, now.length > 0 ? now : undefined)
  // The removals and the new list in one commit: a crash leaves both as they were, or both done.
  await state.save()
}
