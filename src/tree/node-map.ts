/**
 * Where a tree's committed nodes live: path → node, parents always before their children (the order the tree
 * file is written in). A tree may sit on a `TreeBase`, the nodes many trees of one process hold alike (a fleet
 * of simulated devices built from one factory bootstrap): then its own Map keeps only what differs from the
 * base (and which base nodes it removed), and a node written back equal to the base's goes back to sharing
 * it. Trees without a base keep every node in their own Map, as before.
 */
import { isDirectChild, parentPath, type NodeView, type TreeNode, type Usage } from './node.ts'
import { Tally } from './tally.ts'

/** Same format, type, data and ACL: one can stand for the other (nodes are never mutated once stored). */
export function sameNode(a: TreeNode, b: TreeNode): boolean {
  if (a === b) return true
  if (a.f !== b.f || a.t !== b.t || a.a !== b.a || a.c !== b.c) return false
  const x = a.d
  const y = b.d
  if (x === undefined || y === undefined || typeof x === 'string' || typeof y === 'string') return x === y
  if (x.length !== y.length) return false
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false
  return true
}

/** Committed nodes frozen for sharing (see `ManagementTree.asBase`): never changed once made. */
export class TreeBase {
  /** The nodes, parents first. */
  readonly nodes: ReadonlyMap<string, TreeNode>
  /** Each path's place in that order, for a tree restored onto the base. */
  readonly places = new Map<string, number>()
  /** Each interior node's child names in order: every tree on the base reads them (never to be changed). */
  readonly children = new Map<string, string[]>()
  /** What the nodes weigh (binding.md §11), counted once for every tree on the base. */
  readonly tally = new Tally()

  constructor(nodes: Iterable<[string, TreeNode]>) {
    this.nodes = new Map(nodes)
    for (const [path, node] of this.nodes) {
      this.tally.change(path, undefined, node)
      this.places.set(path, this.places.size)
      if (path === '') continue
      const parent = parentPath(path)
      const name = path.slice(parent === '' ? 0 : parent.length + 1)
      const names = this.children.get(parent)
      if (names === undefined) this.children.set(parent, [name])
      else names.push(name)
    }
  }
}

export class NodeMap implements NodeView, Iterable<[string, TreeNode]> {
  readonly #base: TreeBase | undefined
  /** Nodes of this tree alone: replacements of base nodes (in their place) and additions (in their order). */
  readonly #own: Map<string, TreeNode>
  /**
   * Base paths this tree removed. Added again, such a path is an addition of its own: it comes after the
   * others, in creation order, as it would in a tree without a base.
   */
  #removed: Set<string> | undefined
  /** Own nodes that are additions (a path the base lacks, or one it removed). */
  #added = 0
  /** What the nodes weigh, kept as they change. */
  readonly #tally = new Tally()

  /**
   * `nodes` must be parent-first; without a base they become the own Map as they are. On a base, the nodes keep
   * their order: those that come in the base's order, before anything the base lacks, stay in the base's place
   * (shared when equal); a base path further on was removed and added again since.
   */
  constructor(nodes: Map<string, TreeNode>, base?: TreeBase) {
    this.#base = base
    if (base === undefined) {
      this.#own = nodes
      this.#added = nodes.size
      for (const [path, node] of nodes) this.#tally.change(path, undefined, node)
      return
    }
    this.#tally.addAll(base.tally)
    this.#own = new Map()
    for (const path of base.nodes.keys()) if (!nodes.has(path)) this.delete(path)
    let last = -1
    let inPlace = true
    for (const [path, node] of nodes) {
      const place = base.places.get(path)
      if (inPlace && place !== undefined && place > last) {
        last = place
      } else {
        inPlace = false
        if (place !== undefined) this.delete(path)
      }
      this.set(path, node)
    }
  }

  size(): number {
    return (this.#base?.nodes.size ?? 0) - (this.#removed?.size ?? 0) + this.#added
  }

  bytes(): number {
    return this.#tally.bytes
  }

  usage(serverId: string): Usage {
    return this.#tally.usage(serverId)
  }

  node(path: string): TreeNode | undefined {
    const own = this.#own.get(path)
    if (own !== undefined || this.#removed?.has(path)) return own
    return this.#base?.nodes.get(path)
  }

  /** Whether `path` is this tree's own addition: the base lacks it, or this tree removed it and added it again. */
  #isAddition(path: string): boolean {
    return this.#base?.nodes.get(path) === undefined || this.#removed?.has(path) === true
  }

  set(path: string, node: TreeNode): void {
    this.#tally.change(path, this.node(path), node)
    const shared = this.#base?.nodes.get(path)
    if (shared === undefined || this.#removed?.has(path)) {
      if (!this.#own.has(path)) this.#added++
      this.#own.set(path, node)
    } else if (sameNode(shared, node)) {
      this.#own.delete(path)
    } else {
      this.#own.set(path, node)
    }
  }

  delete(path: string): void {
    this.#tally.change(path, this.node(path), undefined)
    if (this.#isAddition(path)) {
      if (this.#own.delete(path)) this.#added--
      return
    }
    this.#own.delete(path)
    ;(this.#removed ??= new Set()).add(path)
  }

  /**
   * Names of the direct children of `path`, in the order of iteration. On a base, its children of `path`
   * (known once for all trees) and this tree's additions: a look costs what the tree changed, not its size.
   */
  childNames(path: string): string[] {
    const prefix = path === '' ? '' : path + '/'
    const removed = this.#removed
    const names = (this.#base?.children.get(path) ?? []).filter((name) => !removed?.has(prefix + name))
    for (const key of this.#own.keys()) {
      if (isDirectChild(key, prefix) && this.#isAddition(key)) names.push(key.slice(prefix.length))
    }
    return names
  }

  /** Base nodes in their order (own replacements in their place), then the own additions in theirs. */
  [Symbol.iterator](): IterableIterator<[string, TreeNode]> {
    return this.#base === undefined ? this.#own.entries() : this.#layered(this.#base)
  }

  *#layered(base: TreeBase): IterableIterator<[string, TreeNode]> {
    for (const [path, node] of base.nodes) {
      if (!this.#removed?.has(path)) yield [path, this.#own.get(path) ?? node]
    }
    for (const [path, node] of this.#own) {
      if (this.#isAddition(path)) yield [path, node]
    }
  }
}
