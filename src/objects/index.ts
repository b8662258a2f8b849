/**
 * The integrator's objects (binding.md §8) mounted in the tree as external nodes (tree/external.ts): the tree
 * applies ACLs, formats and sizes, the session calls the backings around the message's transaction.
 */
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
    await execs.resume()
  } catch (error) {
    return { ok: false, error: `stateDir: cannot write the agent state (${(error as NodeJS.ErrnoException).code ?? 'error'})` }
  }
  return { ok: true, objects: { stop: () => stopping.abort() } }
}
