/**
 * `gwmo-agent tree --config FILE [URI]` (binding.md §8): the stored tree under URI (default `.`), one line a
 * node, then the Generic Alerts waiting for each server. It reads the durable state only: the store's two files
 * are read, never written, truncated, locked or upgraded (no temporary checkpoint is removed, no old files are
 * moved into the store), so it is safe while the agent runs, as root or as the agent's user.
 *
 * Read while the agent writes, the files still give a state the device held: the checkpoint is replaced by a
 * rename (the old one or the new one, whole); a journal record being appended is a torn tail, dropped as a
 * start drops it; and a journal read after a newer checkpoint replaced the one read starts with a record out of
 * sequence, so none of it is applied (store/format.ts `replayJournal`). The listing is then that of the older
 * state, never a mixture.
 *
 * Lines, tab-separated: URI, format, type (`-` for none), ACL (`-`: inherited), value. A text value is a JSON
 * string; bytes are `base64:…` up to `MAX_BASE64_BYTES`, else `(N bytes)`; an interior node's value is `-`;
 * `AAuthSecret` and `AAuthData` are `(secret)`. Then `pending alerts: N` and one line per alert: server, id,
 * Meta/Type, when it was queued, Source LocURI (`-`), data.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { loadConfigFile } from '../config.ts'
import { AgentState, STATE_NAMESPACE } from '../session/agent-state.ts'
import { DiscardingStore, restore } from '../store/index.ts'
import { isSecret, ManagementTree, TREE_NAMESPACE, parseUri } from '../tree/index.ts'
import { pathToUri } from '../tree/node.ts'
import { STATE_FILES } from './agent.ts'
import { LEGACY_STATE_FILES } from './migrate.ts'

export const TREE_USAGE = 'gwmo-agent tree --config FILE [URI]'

/** Longer binary values are shown by their size only. */
const MAX_BASE64_BYTES = 64

/**
 * Nodes whose value is never shown: the tree's own secrets (no Get for anyone), and an AAuthSecret or AAuthData
 * wherever a party put one.
 */
const isShownAsSecret = (path: string): boolean => isSecret(path) || /(^|\/)AAuth(Secret|Data)$/.test(path)

export interface TreeIo {
  argv: string[]
  env: Record<string, string | undefined>
  stdout: (line: string) => void
  stderr: (line: string) => void
}

export async function runTreeCli(io: TreeIo, exit: { ok: number; failure: number; usage: number }): Promise<{ kind: 'exit'; code: number }> {
  const fail = (code: number, line: string) => {
    io.stderr(`gwmo-agent tree: ${line}`)
    return { kind: 'exit' as const, code }
  }
  let values: { config?: string; help?: boolean }
  let positionals: string[]
  try {
    ;({ values, positionals } = parseArgs({
      args: io.argv,
      options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: true,
    }))
  } catch (error) {
    return fail(exit.usage, (error as Error).message)
  }
  if (values.help) {
    io.stdout(`usage: ${TREE_USAGE}\n\nPrints the stored tree under URI (default .) and the pending alerts, read-only.`)
    return { kind: 'exit', code: exit.ok }
  }
  if (values.config === undefined) return fail(exit.usage, '--config FILE is required')
  if (positionals.length > 1) return fail(exit.usage, 'at most one URI')
  const uri = positionals[0] ?? '.'
  const parsed = parseUri(uri)
  if (typeof parsed === 'number' || parsed.prop !== undefined) return fail(exit.usage, `${uri}: not a node URI`)
  const loaded = await loadConfigFile(values.config, io.env)
  if (!loaded.ok) return fail(exit.usage, loaded.error)

  const stored = await readStored(loaded.config.stateDir)
  if (!stored.ok) return fail(exit.failure, stored.error)
  if (stored.tree.committed.node(parsed.path) === undefined) return fail(exit.failure, `${pathToUri(parsed.path)}: no such node`)
  for (const line of listTree(stored.tree, parsed.path)) io.stdout(line)
  for (const line of listAlerts(stored.state)) io.stdout(line)
  return { kind: 'exit', code: exit.ok }
}

type Stored = { ok: true; tree: ManagementTree; state: AgentState | undefined } | { ok: false; error: string }

/** The tree and the agent state as a start would restore them from `stateDir`, without writing anything. */
export async function readStored(stateDir: string): Promise<Stored> {
  let failed: string | undefined
  const read = (name: string): Promise<Uint8Array | undefined> =>
    readFile(join(stateDir, name)).then((bytes) => new Uint8Array(bytes), (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') failed ??= `stateDir: cannot read ${join(stateDir, name)} (${error.code ?? 'error'})`
      return undefined
    })
  // The checkpoint, then the journal (a checkpoint that replaces the one read meanwhile: see above).
  const checkpoint = await read(STATE_FILES.checkpoint)
  const journal = await read(STATE_FILES.journal)
  if (failed !== undefined) return { ok: false, error: failed }
  // Restored in memory, as a start restores them (a torn tail dropped there alone).
  const restored = restore(checkpoint, journal)
  if (!restored.ok) return { ok: false, error: `store: ${restored.error}` }
  const treeEntries = restored.namespaces.get(TREE_NAMESPACE)
  if (treeEntries === undefined) return readLegacy(stateDir)
  const tree = ManagementTree.fromEntries(treeEntries)
  if (!tree.ok) return { ok: false, error: `tree: ${tree.error}` }
  const stateEntries = restored.namespaces.get(STATE_NAMESPACE)
  if (stateEntries === undefined) return { ok: true, tree: tree.tree, state: undefined }
  // A store that gives these entries and keeps nothing: the state read is never written anywhere.
  const entries = Object.assign(new DiscardingStore(), { load: () => Promise.resolve({ ok: true as const, entries: stateEntries }) })
  const state = await AgentState.open(entries, () => new Uint8Array(0))
  return state.ok ? { ok: true, tree: tree.tree, state: state.state } : state
}

/** The files of a version before the store, which the agent's next start moves into it. */
async function readLegacy(stateDir: string): Promise<Stored> {
  let treeBytes: Buffer
  try {
    treeBytes = await readFile(join(stateDir, LEGACY_STATE_FILES.tree))
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error'
    return { ok: false, error: code === 'ENOENT' ? `stateDir: ${stateDir} holds no tree (the agent has not started yet)` : `stateDir: cannot read ${LEGACY_STATE_FILES.tree} (${code})` }
  }
  const tree = ManagementTree.restore(new Uint8Array(treeBytes))
  if (!tree.ok) return { ok: false, error: `tree: ${tree.error}` }
  const stateBytes = await readFile(join(stateDir, LEGACY_STATE_FILES.state)).catch(() => undefined)
  const state = stateBytes === undefined ? undefined : AgentState.fromLegacyFile(new Uint8Array(stateBytes))
  return { ok: true, tree: tree.tree, state: state?.ok ? state.state : undefined }
}

/** One line per node under `path` (itself first), depth first in creation order. */
export function listTree(tree: ManagementTree, path: string): string[] {
  const nodes = tree.committed
  const lines: string[] = []
  const visit = (at: string): void => {
    const node = nodes.node(at)
    if (node === undefined) return
    const value = node.f === 'node' ? '-' : isShownAsSecret(at) ? '(secret)' : showValue(node.d)
    lines.push([pathToUri(at), node.f, node.t ?? '-', node.a ?? '-', value].join('\t'))
    for (const name of nodes.childNames(at)) visit(at === '' ? name : `${at}/${name}`)
  }
  visit(path)
  return lines
}

/** `pending alerts: N`, then one line per alert, server by server in queue order. */
export function listAlerts(state: AgentState | undefined): string[] {
  const servers = state?.serversWithPendingAlerts() ?? []
  const lines: string[] = []
  for (const server of servers) {
    for (const { id, alert, queuedAt } of state!.pendingAlerts(server)) {
      const queued = Number.isFinite(queuedAt) ? new Date(queuedAt).toISOString() : '-'
      lines.push([server, id, alert.type, queued, alert.source ?? '-', showValue(alert.data)].join('\t'))
    }
  }
  return [`pending alerts: ${lines.length}`, ...lines]
}

function showValue(data: string | Uint8Array | undefined): string {
  if (data === undefined) return '-'
  if (typeof data === 'string') return JSON.stringify(data)
  return data.length <= MAX_BASE64_BYTES ? `base64:${Buffer.from(data).toString('base64')}` : `(${data.length} bytes)`
}
