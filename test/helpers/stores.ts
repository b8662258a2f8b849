/**
 * What a restart would find in a store: its files copied into a new store, read the way a start reads them,
 * without touching the store under test. And stores whose writes a test holds or fails.
 */
import { AgentState } from '../../src/session/agent-state.ts'
import { MemoryFiles, MemoryStore, readDurable, type WriteKind } from '../../src/store/index.ts'
import { ManagementTree, TREE_NAMESPACE, type RestoreResult } from '../../src/tree/index.ts'

/** A store on a copy of `store`'s files: a restart's view, independent of the live one. */
export function copyOf(store: MemoryStore): MemoryStore {
  return new MemoryStore(new MemoryFiles({ checkpoint: store.files.checkpoint, journal: store.files.journal }))
}

/** The tree a restart would restore from `store`. */
export async function durableTree(store: MemoryStore): Promise<RestoreResult> {
  const read = await readDurable(store.files)
  if (!read.ok) return read
  const entries = read.namespaces.get(TREE_NAMESPACE)
  if (entries === undefined) return { ok: false, error: 'no tree stored' }
  return ManagementTree.fromEntries(entries)
}

/** The agent state a restart would restore from `store`. */
export async function durableState(store: MemoryStore): Promise<AgentState> {
  const opened = await AgentState.open(copyOf(store), () => {
    throw new Error('no agent state stored')
  })
  if (!opened.ok) throw new Error(opened.error)
  return opened.state
}

/** A memory store whose writes fail while `failing` says so (a full disk). */
export function failingStore(failing: (kind: WriteKind) => boolean, error: () => Error = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })): MemoryStore {
  const store = new MemoryStore()
  store.files.beforeWrite = (kind) => {
    if (failing(kind)) throw error()
  }
  return store
}

/** A memory store whose writes wait until the test releases them, one by one. */
export class GatedStore extends MemoryStore {
  readonly #gates: Array<() => void> = []
  /** While false, writes go through at once. */
  gated = true
  fail = false

  constructor() {
    super()
    this.files.beforeWrite = (kind) => {
      if (!this.gated || kind === 'truncate') return undefined
      return new Promise<void>((resolve, reject) => {
        this.#gates.push(() => (this.fail ? reject(new Error('disk full')) : resolve()))
      })
    }
  }

  pending(): number {
    return this.#gates.length
  }

  release(): void {
    this.#gates.shift()?.()
  }
}
