/**
 * A set of pending changes over another view: the working copy of a transaction. Reads fall through to the
 * view below for any path the overlay has not changed; `null` marks a removed node.
 */
import { childPath, isDirectChild, type NodeView, type TreeNode, type Usage, type WritableView } from './node.ts'
import { plus, Tally } from './tally.ts'

export class Overlay implements WritableView {
  /** Path → new node, or `null` when removed; in the order the paths were first changed. */
  readonly changes = new Map<string, TreeNode | null>()
  /**
   * What the view below held at each changed path when this overlay first changed it; a top-level commit
   * refuses to overwrite a path that another commit has changed since (first committer wins).
   */
  readonly seen = new Map<string, TreeNode | undefined>()
  /** Nodes added minus nodes removed, relative to the view below. */
  delta = 0
  /** What the changes add to the view below's weight (bytes, and each party's usage); negative when they free. */
  readonly weight = new Tally()
  /**
   * Accounts (`<x>` of `./DMAcc/<x>`) a party created in this overlay, with that party's ServerID: the commit
   * holds them to the rules of an added account (binding.md §6) before they join the tree. Made when the first
   * is noted: most transactions create none.
   */
  #creators: Map<string, string> | undefined

  readonly #below: NodeView

  constructor(below: NodeView) {
    this.#below = below
  }

  node(path: string): TreeNode | undefined {
    const changed = this.changes.get(path)
    if (changed !== undefined) return changed ?? undefined
    return this.#below.node(path)
  }

  childNames(path: string): string[] {
    if (this.changes.size === 0) return this.#below.childNames(path)
    const names = this.#below.childNames(path).filter((name) => this.changes.get(childPath(path, name)) !== null)
    const prefix = path === '' ? '' : path + '/'
    for (const [key, value] of this.changes) {
      if (value !== null && isDirectChild(key, prefix) && this.#below.node(key) === undefined) {
        names.push(key.slice(prefix.length))
      }
    }
    return names
  }

  size(): number {
    return this.#below.size() + this.delta
  }

  bytes(): number {
    return this.#below.bytes() + this.weight.bytes
  }

  usage(serverId: string): Usage {
    return plus(this.#below.usage(serverId), this.weight.usage(serverId))
  }

  creatorOf(account: string): string | undefined {
    return this.#creators?.get(account) ?? this.#below.creatorOf?.(account)
  }

  noteCreator(account: string, serverId: string): void {
    ;(this.#creators ??= new Map()).set(account, serverId)
  }

  /** The accounts a party created in this overlay (see `noteCreator`). */
  createdAccounts(): Iterable<string> {
    return this.#creators?.keys() ?? []
  }

  put(path: string, node: TreeNode): void {
    this.#change(path, node)
  }

  remove(path: string): void {
    this.#change(path, null)
  }

  /** Takes over the changes of an overlay stacked on this one (a nested transaction's commit). */
  absorb(inner: Overlay): void {
    for (const [key, value] of inner.seen) if (!this.changes.has(key)) this.seen.set(key, value)
    for (const [key, value] of inner.changes) this.changes.set(key, value)
    this.delta += inner.delta
    this.weight.addAll(inner.weight)
    for (const [account, serverId] of inner.#creators ?? []) this.noteCreator(account, serverId)
  }

  #change(path: string, node: TreeNode | null): void {
    if (!this.changes.has(path)) this.seen.set(path, this.#below.node(path))
    const before = this.node(path)
    this.delta += (node === null ? 0 : 1) - (before === undefined ? 0 : 1)
    this.weight.change(path, before, node ?? undefined)
    this.changes.set(path, node)
  }
}
