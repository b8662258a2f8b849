/**
 * The management tree (OMA DM TND 1.2): committed nodes in one Map, every write a transaction, and a dirty
 * flag that says when the tree differs from what its store holds. In the store (src/store) the tree is the
 * `tree` namespace, one entry per node: a commit tells the store the nodes it changed, and `flush` makes them
 * durable, so that what a change writes is the size of the change, not of the tree.
 */
import { validateAllAccounts } from './account-rules.ts'
import { depthOf, parentPath, pathToUri, shared, TreeNode } from './node.ts'
import { NodeMap, sameNode, TreeBase } from './node-map.ts'
import { DEVICE_FULL, treeLimits, type TreeLimits } from './limits.ts'
import { childrenOp, execOp, getOp, nodePath, readSecretOp, type ExecHandler } from './operations.ts'
import { mountNode, type MountedNode, type MountOptions, type MountResult } from './mount.ts'
import type { ExternalNode, ExternalNodeShape } from './external.ts'
import { Overlay } from './overlay.ts'
import type { Store } from '../store/store.ts'
import { decodeNodeEntries, decodeTreeFile, encodeNode, encodeTreeFile, type DecodedNodes } from './tree-file.ts'
import { refused, TreeTransaction, validateChanges, type CommitResult, type TransactionRoot } from './transaction.ts'
import { NO_URI_LIMITS, type UriLimits } from './uri.ts'
import type { GetResult, NodeValue, Principal, SyncMLStatus, Transaction, TreeOps } from './types.ts'

export interface TreeOptions {
  /**
   * The tree's bounds (binding.md §11): past one an Add or Replace answers 420 (Device full). Default: 2000
   * nodes and nothing else; the agent gives its configuration's.
   */
  limits?: Partial<TreeLimits>
  /** The root's ACL (TND 1.2, 7.7.1.1: the root always has one). Default `Get=*`. */
  rootAcl?: string
  /**
   * Nodes this tree shares with others (`asBase` of a tree built alike): only what differs from them is kept
   * per tree. Reads, writes, persistence and validation are those of a tree without one.
   */
  base?: TreeBase
}

export interface OpenOptions extends TreeOptions {
  /** Builds the tree of a first start, when the store holds nothing yet. */
  factory: () => ManagementTree | { error: string } | Promise<ManagementTree | { error: string }>
}

export type OpenResult = { ok: true; tree: ManagementTree; created: boolean } | { ok: false; error: string }
export type RestoreResult = { ok: true; tree: ManagementTree } | { ok: false; error: string }

/** The tree's namespace in the store. */
export const TREE_NAMESPACE = 'tree'

export class ManagementTree implements TreeOps, TransactionRoot {
  /** @internal The committed nodes; read by the transactions and the persistence layer. */
  readonly committed: NodeMap
  readonly limits: Readonly<TreeLimits>
  /** Where changes go; undefined for a tree without one, or one whose store keeps nothing (no bytes are made). */
  #journal: Store | undefined
  #store: Store | undefined
  /** Bumped by every commit that changed something; `#durable` is the last one the store holds. */
  #generation = 0
  #durable = 0
  /** The store's commit the last flush waits on, and the newest generation a caller of it asked for. */
  #flushing: { commit: Promise<void>; generation: number; done: Promise<void> } | undefined
  #execHandlers: Map<string, ExecHandler> | undefined
  #mounts: Map<string, MountedNode> | undefined
  #limits: UriLimits | undefined
  #limitsGeneration = -1

  constructor(options: TreeOptions = {}, nodes?: Map<string, TreeNode>) {
    this.limits = treeLimits(options.limits)
    const initial = nodes ?? new Map([['', new TreeNode('node', undefined, undefined, options.rootAcl ?? 'Get=*')]])
    this.committed = new NodeMap(initial, options.base)
  }

  /**
   * Loads the tree from `store`, or builds the factory tree and stores it when the store holds none. A stored
   * tree that is corrupt, of a newer version or invalid is refused (and left as it is) with a one-line reason.
   */
  static async open(store: Store, options: OpenOptions): Promise<OpenResult> {
    let loaded
    try {
      loaded = await store.load(TREE_NAMESPACE)
    } catch (err) {
      loaded = { ok: false as const, error: `cannot read the store: ${(err as Error).message}` }
    }
    if (!loaded.ok) return { ok: false, error: loaded.error }
    if (loaded.entries !== undefined) {
      const restored = ManagementTree.fromEntries(loaded.entries, options)
      if (!restored.ok) return restored
      restored.tree.#attach(store, false)
      return { ok: true, tree: restored.tree, created: false }
    }
    const made = await options.factory()
    if (!(made instanceof ManagementTree)) return { ok: false, error: `factory tree: ${made.error}` }
    // On a base, the factory tree keeps only what differs from it (a fleet's trees all start alike); it takes the
    // options' limits either way.
    const built = new ManagementTree(options, new Map(made.committed))
    built.attachStore(store)
    try {
      await built.flush()
    } catch (err) {
      return { ok: false, error: `cannot store the factory tree: ${(err as Error).message}` }
    }
    return { ok: true, tree: built, created: true }
  }

  /** Rebuilds a tree from a whole-tree file (`serialize`); the same account validator as every commit runs on it. */
  static restore(bytes: Uint8Array, options: TreeOptions = {}): RestoreResult {
    return ManagementTree.#validated(decodeTreeFile(bytes), options)
  }

  /** Rebuilds a tree from the entries of the store's `tree` namespace, validated as `restore` does. */
  static fromEntries(entries: Iterable<[string, Uint8Array]>, options: TreeOptions = {}): RestoreResult {
    return ManagementTree.#validated(decodeNodeEntries(entries), options)
  }

  static #validated(decoded: DecodedNodes, options: TreeOptions): RestoreResult {
    if (!decoded.ok) return decoded
    const tree = new ManagementTree(options, decoded.nodes)
    const messages = validateAllAccounts(tree.committed)
    if (messages.length > 0) return { ok: false, error: `invalid account: ${messages.join('; ')}` }
    return { ok: true, tree }
  }

  /** The persisted form of the committed tree. */
  serialize(): Uint8Array {
    return encodeTreeFile(this.committed)
  }

  /**
   * The committed nodes as they are now, frozen, for trees built alike to share (`TreeOptions.base`): a fleet
   * of simulated devices holds its factory tree once instead of once a device.
   */
  asBase(): TreeBase {
    return new TreeBase(this.committed)
  }

  /**
   * Makes `store` the tree's store, holding the tree as it is now (its namespace replaced by every node, made
   * durable by the next flush). `open` attaches the store it restored from.
   */
  attachStore(store: Store): void {
    this.#attach(store, true)
  }

  #attach(store: Store, replace: boolean): void {
    this.#store = store
    this.#journal = store.keepsNothing === true ? undefined : store
    this.#flushing = undefined
    const journal = this.#journal
    if (journal === undefined) return
    journal.attach(TREE_NAMESPACE, () => this.#entries())
    if (!replace) return
    journal.clear(TREE_NAMESPACE)
    for (const [path, node] of this.committed) journal.put(TREE_NAMESPACE, path, encodeNode(node))
    this.#generation++ // not in the store until the next flush
  }

  *#entries(): Iterable<[string, Uint8Array]> {
    for (const [path, node] of this.committed) yield [path, encodeNode(node)]
  }

  /** Sets or removes a committed node, and tells the store. */
  #set(path: string, node: TreeNode): void {
    this.committed.set(path, node)
    this.#journal?.put(TREE_NAMESPACE, path, encodeNode(node))
  }

  #remove(path: string): void {
    this.committed.delete(path)
    this.#journal?.delete(TREE_NAMESPACE, path)
  }

  /** Whether a commit changed the tree since the store last took it. */
  get dirty(): boolean {
    return this.#generation !== this.#durable
  }

  /**
   * Makes every committed change durable and resolves once it is (the store's commit: one journal record). Calls
   * made while a write runs share it if it already holds their changes, or else share one follow-up write.
   * Rejects when the store does.
   */
  flush(): Promise<void> {
    const store = this.#store
    if (store === undefined) return Promise.reject(new Error('the tree has no store to flush to'))
    if (this.#journal === undefined) {
      this.#durable = this.#generation
      return Promise.resolve()
    }
    if (!this.dirty) return Promise.resolve()
    const generation = this.#generation
    const commit = this.#journal.commit()
    const current = this.#flushing
    if (current !== undefined && current.commit === commit) {
      // The same write holds every change up to this call too.
      current.generation = Math.max(current.generation, generation)
      return current.done
    }
    const flushing = { commit, generation, done: Promise.resolve() }
    flushing.done = commit.then(() => {
      if (flushing.generation > this.#durable) this.#durable = flushing.generation
    })
    this.#flushing = flushing
    return flushing.done
  }

  begin(): Transaction {
    return new TreeTransaction(this, undefined)
  }

  get(uri: string, principal: Principal): GetResult {
    return getOp(this.committed, this, uri, principal)
  }

  add(uri: string, value: NodeValue, principal: Principal): SyncMLStatus {
    return this.#single((tx) => tx.add(uri, value, principal))
  }

  replace(uri: string, value: NodeValue, principal: Principal): SyncMLStatus {
    return this.#single((tx) => tx.replace(uri, value, principal))
  }

  delete(uri: string, principal: Principal): SyncMLStatus {
    return this.#single((tx) => tx.delete(uri, principal))
  }

  exec(uri: string, data: string | Uint8Array | undefined, principal: Principal, correlator?: string, signal?: AbortSignal): SyncMLStatus | Promise<SyncMLStatus> {
    return execOp(this.committed, this, uri, data, principal, correlator, signal)
  }

  readSecret(uri: string): string | Uint8Array | undefined {
    return readSecretOp(this.committed, uri)
  }

  children(uri: string): string[] | undefined {
    return childrenOp(this.committed, uri)
  }

  /** Makes Exec on `uri` run `handler` (no handler ships; without one, Exec answers 405). */
  registerExec(uri: string, handler: ExecHandler): boolean {
    const path = nodePath(undefined, uri)
    if (typeof path === 'number') return false
    ;(this.#execHandlers ??= new Map()).set(path, handler)
    return true
  }

  /**
   * Puts a node whose value or action lives outside the tree at `uri` (binding.md §8, external.ts), made anew at
   * every start: the interior nodes on its way are created, its format, type and ACL are the shape's (a leaf
   * without an ACL gets `Get=*`), and a stored leaf (no `get`) keeps the value it had, `shape.value` being only
   * its first. Refused under `./DMAcc`, `./DevInfo`, `./Inbox` and `./FUMO` unless `internal`, and where it
   * would clash with another mount; the error names the URI. Committed as the device; the next flush stores it.
   */
  mount(uri: string, shape: ExternalNodeShape, node: ExternalNode, options?: MountOptions): MountResult {
    const mounts = (this.#mounts ??= new Map())
    const result = mountNode(this, mounts, uri, shape, node, options)
    if (!result.ok) return result
    mounts.set(result.mounted.path, result.mounted)
    return { ok: true }
  }

  /** The node mounted at `uri` (`mount`), if any. */
  external(uri: string): MountedNode | undefined {
    if (this.#mounts === undefined) return undefined
    const path = nodePath(undefined, uri)
    return typeof path === 'string' ? this.#mounts.get(path) : undefined
  }

  /** @internal A registered handler first, else the Exec of the node mounted there. */
  execHandler(path: string): ExecHandler | undefined {
    const registered = this.#execHandlers?.get(path)
    const mounted = this.#mounts?.get(path)
    const exec = mounted?.node.exec
    if (registered !== undefined || exec === undefined) return registered
    return (data, principal, correlator, signal) => exec.call(mounted!.node, data, {
      serverId: principal === 'device' ? '' : principal.serverId,
      uri: mounted!.uri,
      ...(correlator !== undefined && { correlator }),
      signal: signal ?? new AbortController().signal,
    })
  }

  /** @internal */
  mountedAt(path: string): MountedNode | undefined {
    return this.#mounts?.get(path)
  }

  /**
   * @internal The limits in `./DevDetail/URI`, read where they live so that a Replace by the device applies;
   * read again only after a commit, since every URI of every command is checked against them.
   */
  uriLimits(): UriLimits {
    if (this.#limits !== undefined && this.#limitsGeneration === this.#generation) return this.#limits
    const nodes = this.committed
    const read = (name: string): number => {
      const d = nodes.node('DevDetail/URI/' + name)?.d
      return typeof d === 'string' && /^\d+$/.test(d) ? Number(d) : 0
    }
    this.#limits = nodes.node('DevDetail/URI') ? { maxDepth: read('MaxDepth'), maxTotLen: read('MaxTotLen'), maxSegLen: read('MaxSegLen') } : NO_URI_LIMITS
    this.#limitsGeneration = this.#generation
    return this.#limits
  }

  /**
   * @internal Merges a top-level transaction into the committed nodes. Other transactions may have committed
   * since it began: a path one of them changed since this one first touched it is a conflict (first committer
   * wins); otherwise the result is rebuilt against the tree as it is now (a deleted node takes its current
   * descendants along, every added node must still have an interior parent) and its accounts are validated
   * before anything is applied.
   */
  applyCommit(work: Overlay): CommitResult {
    const changes = work.changes
    if (changes.size === 0) return { ok: true }
    const nodes = this.committed
    for (const [path, seen] of work.seen) {
      if (nodes.node(path) !== seen) return refused(500, [`${pathToUri(path)}: changed by another transaction meanwhile`])
    }
    const merged = new Overlay(this.committed)
    for (const [path, node] of changes) {
      if (node === null) {
        if (changes.get(parentPath(path)) === null) {
          merged.remove(path) // its topmost deleted ancestor sweeps the subtree below
          continue
        }
        const prefix = path + '/'
        for (const [key] of nodes) {
          if (key.startsWith(prefix) && !changes.get(key)) merged.remove(key)
        }
        merged.remove(path)
      } else {
        merged.put(path, node)
      }
    }
    for (const [path, node] of merged.changes) {
      if (node !== null && path !== '' && merged.node(parentPath(path))?.f !== 'node') {
        return refused(500, [`${pathToUri(path)}: its parent was removed by a concurrent change`])
      }
    }
    // The bounds again, on the tree as it is now (binding.md §11); an Add's, since a Replace that grows a leaf
    // is checked when it runs and a commit is not refused for the device's own bookkeeping.
    const full = this.#full(merged)
    if (full !== undefined) return refused(DEVICE_FULL, [full])
    const validated = validateChanges(merged)
    if (!validated.ok) return validated
    const additions: [string, TreeNode][] = []
    const before: Change[] = []
    for (const [path, node] of merged.changes) {
      before.push([path, nodes.node(path), node ?? undefined])
      if (node === null) this.#remove(path)
      else additions.push([path, node])
    }
    // Parents before children, so that the Map's order (and the store's) always has a parent first.
    additions.sort(byDepth)
    for (const [path, node] of additions) this.#set(shared(path), node)
    this.#generation++
    return { ok: true, undo: () => this.#undo(before) }
  }

  /** Why the nodes `merged` adds do not fit the tree's bounds, or undefined when they do. */
  #full(merged: Overlay): string | undefined {
    if (merged.delta <= 0) return undefined
    const limits = this.limits
    if (merged.size() > limits.maxNodes) return `.: the tree is full (${limits.maxNodes} nodes)`
    if (merged.weight.bytes > 0 && merged.bytes() > limits.treeBytes) return `.: the tree is full (${limits.treeBytes} bytes)`
    for (const party of merged.weight.adders()) {
      const used = merged.usage(party)
      if (used.nodes > limits.nodesPerParty || used.bytes > limits.bytesPerParty) return `.: ${party} has added all the nodes it may`
    }
    return undefined
  }

  /** See `CommitUndo`. Leaves the tree dirty: the next flush stores it as it is now, whatever a failed one left. */
  #undo(changes: Change[]): void {
    const nodes = this.committed
    const current = (path: string, node: TreeNode | undefined) => {
      const now = nodes.node(path)
      return now === undefined || node === undefined ? now === node : sameNode(now, node)
    }
    const undone = changes.filter(([path, , after]) => current(path, after))
    const added = undone.filter(([, was]) => was === undefined).sort(byDepth).reverse()
    const removing = new Set(added.map(([path]) => path))
    // Deepest first: a node a later commit put below an added one keeps it, so no node is left without its parent.
    for (const [path] of added) {
      const prefix = path + '/'
      let keep = false
      for (const [key] of nodes) if (key.startsWith(prefix) && !removing.has(key)) keep = true
      if (keep) removing.delete(path)
      else this.#remove(path)
    }
    for (const [path, was, after] of undone) if (was !== undefined && after !== undefined) this.#set(path, was)
    // Parents first, each only under a parent that is there.
    for (const [path, was] of undone.filter(([, , after]) => after === undefined).sort(byDepth)) {
      if (was !== undefined && nodes.node(parentPath(path))?.f === 'node') this.#set(shared(path), was)
    }
    this.#generation++
  }

  #single(op: (tx: Transaction) => SyncMLStatus): SyncMLStatus {
    const tx = this.begin()
    const status = op(tx)
    if (status < 200 || status > 299) {
      tx.rollback()
      return status
    }
    const result = tx.commit()
    return result.ok ? status : result.failure.status
  }
}

/** A path a commit changed: the node before it and after it (undefined where there was none). */
type Change = [path: string, before: TreeNode | undefined, after: TreeNode | undefined]

function byDepth(a: readonly [string, ...unknown[]], b: readonly [string, ...unknown[]]): number {
  return depthOf(a[0]) - depthOf(b[0])
}
