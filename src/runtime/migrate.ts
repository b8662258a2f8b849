/**
 * Upgrade of a device from the files agents before the store kept in `stateDir`: `tree.dat` (the whole tree,
 * tree/tree-file.ts) and `agent-state.dat` (session/legacy-state-file.ts). On the first start with the store,
 * while the store holds nothing, they are read whole and validated as a restore always was, written as the
 * store's first checkpoint, and removed only once that checkpoint is durable. A start that finds the store
 * written and the old files still there (a stop between the two) removes them: the store supersedes them. A
 * corrupt or newer old file is refused with one line, as it always was, and nothing is written.
 */
import { open, readFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../log.ts'
import { AgentState, STATE_NAMESPACE } from '../session/agent-state.ts'
import type { JournalStore } from '../store/store.ts'
import { ManagementTree, TREE_NAMESPACE } from '../tree/index.ts'

export const LEGACY_STATE_FILES = Object.freeze({ tree: 'tree.dat', state: 'agent-state.dat' })

export async function migrateLegacyFiles(dir: string, store: JournalStore, logger: Logger): Promise<{ ok: true } | { ok: false; error: string }> {
  const paths = { tree: join(dir, LEGACY_STATE_FILES.tree), state: join(dir, LEGACY_STATE_FILES.state) }
  let held = false
  for (const namespace of [TREE_NAMESPACE, STATE_NAMESPACE]) {
    const loaded = await store.peek(namespace)
    if (!loaded.ok) return { ok: false, error: `store: ${loaded.error}` }
    held ||= loaded.entries !== undefined
  }
  let treeBytes: Uint8Array | undefined
  let stateBytes: Uint8Array | undefined
  try {
    treeBytes = await readIfThere(paths.tree)
    stateBytes = await readIfThere(paths.state)
  } catch (error) {
    return { ok: false, error: `stateDir: cannot read the files of an earlier version (${(error as NodeJS.ErrnoException).code ?? 'error'})` }
  }
  if (treeBytes === undefined && stateBytes === undefined) return { ok: true }
  if (held) {
    await removeAll(dir, [paths.tree, paths.state])
    return { ok: true }
  }
  if (treeBytes !== undefined) {
    const restored = ManagementTree.restore(treeBytes)
    if (!restored.ok) return { ok: false, error: `tree: ${restored.error}` }
    restored.tree.attachStore(store)
  }
  if (stateBytes !== undefined) {
    const restored = AgentState.fromLegacyFile(stateBytes)
    if (!restored.ok) return restored
    restored.state.attachStore(store)
  }
  try {
    await store.checkpoint()
  } catch (error) {
    return { ok: false, error: `stateDir: cannot write the store (${(error as NodeJS.ErrnoException).code ?? 'error'})` }
  }
  await removeAll(dir, [paths.tree, paths.state])
  logger.info('state of an earlier version moved into the store', { tree: treeBytes !== undefined, state: stateBytes !== undefined })
  return { ok: true }
}

function readIfThere(path: string): Promise<Uint8Array | undefined> {
  return readFile(path).then(
    (bytes) => new Uint8Array(bytes),
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined
      throw error
    },
  )
}

/** Removes the old files, then syncs the directory: a failure is left for the next start to finish. */
async function removeAll(dir: string, paths: string[]): Promise<void> {
  try {
    for (const path of paths) await unlink(path).catch((error: NodeJS.ErrnoException) => { if (error.code !== 'ENOENT') throw error })
    const handle = await open(dir, 'r')
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
  } catch {
    // The store is durable and supersedes them; the next start removes them again.
  }
}
