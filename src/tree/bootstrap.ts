/**
 * Applying a bootstrap message (OMA DM Bootstrap 1.2, DM profile): a SyncML DM message holding only Add and
 * Replace commands (possibly inside Atomic or Sequence) and Final. It is applied in one transaction as the
 * device, all or nothing, so that a duplicate delivery of an Add bootstrap fails cleanly with nothing changed.
 * Both the factory bootstrap of a first start and the local DM Bootstrap Server go through here; the factory
 * bootstrap may write anything, a local bootstrap only adds accounts (`BootstrapOptions.newAccountsOnly`).
 */
import type { Command, ItemCommand, SyncMLMessage } from '../codec/syncml-model.ts'
import { readLeafText } from './accounts.ts'
import { creatorAcl } from './acl.ts'
import { canonicalFormat } from './formats.ts'
import type { CommitUndo, NodeValue, Transaction } from './types.ts'
import { parseUri } from './uri.ts'

/** `undo` as `Transaction.commit` gives it: for a bootstrap the store then fails to take. */
export type BootstrapResult = { ok: true; serverIds: string[]; undo?: CommitUndo } | { ok: false; reason: string }

/** Anything a bootstrap can run in: the tree, or an enclosing transaction. */
export interface BootstrapTarget {
  begin(): Transaction
}

export interface BootstrapOptions {
  /**
   * A local bootstrap (binding.md §6; GwMO 1.0, 8.4.2, gateway bootstrap): every command is an Add inside an
   * account that the same message creates. It never replaces or deletes an existing account or its ACL, adds no
   * node (no credential) to one, and writes nothing outside the accounts it creates; each of these refuses the
   * whole message. A new account's ACL is that of its own server (below), as no Replace can set another.
   */
  newAccountsOnly?: boolean
}

/** Why a local bootstrap refuses a command (binding.md §6). */
const ONLY_NEW_ACCOUNTS = 'a local bootstrap only adds new accounts (binding.md §6)'

const STATUS_TEXT: Record<number, string> = {
  400: 'bad request', 404: 'not found', 405: 'not allowed', 406: 'not supported', 414: 'URI too long',
  415: 'data does not fit its format', 418: 'already exists', 420: 'tree full', 425: 'permission denied',
  500: 'failed',
}

export function applyBootstrap(tree: BootstrapTarget, message: SyncMLMessage, options: BootstrapOptions = {}): BootstrapResult {
  // OMA DM Protocol 1.2, 5.1.4: Final closes the package; a bootstrap is one whole package in one message.
  if (!message.final) return { ok: false, reason: 'the bootstrap message has no Final' }
  const tx = tree.begin()
  let writes = 0
  /** The accounts (`<x>` of `./DMAcc/<x>`) written to, and those among them that the message creates. */
  const touched = new Set<string>()
  const created = new Set<string>()

  const run = (commands: Command[]): string | undefined => {
    for (const command of commands) {
      const reason =
        command.kind === 'Atomic' || command.kind === 'Sequence' ? run(command.commands)
        : command.kind === 'Add' || command.kind === 'Replace' ? write(command)
        : `${command.kind === 'Unknown' ? command.name : command.kind} (CmdID ${command.cmdId}): not allowed in a bootstrap (only Add and Replace)`
      if (reason !== undefined) return reason
    }
    return undefined
  }

  const write = (command: ItemCommand): string | undefined => {
    if (command.items.length === 0) return `${command.kind} (CmdID ${command.cmdId}): no Item`
    for (const item of command.items) {
      const uri = item.target?.locUri
      // Each reason names the command, and its URI once there is one.
      const where = `${command.kind}${uri ? ' ' + uri : ''} (CmdID ${command.cmdId})`
      if (!uri) return `${where}: an Item has no Target`
      if (item.moreData) return `${where}: large objects are not taken in a bootstrap`
      const formatName = item.meta?.format ?? command.meta?.format ?? 'chr'
      const format = canonicalFormat(formatName)
      if (format === undefined) return `${where}: unknown format '${formatName}'`
      const value: NodeValue = { format }
      const type = item.meta?.type ?? command.meta?.type
      if (type !== undefined) value.type = type
      if (item.data !== undefined) value.data = item.data
      const parsed = parseUri(uri)
      const path = typeof parsed === 'number' ? '' : parsed.path
      const account = path.startsWith('DMAcc/') ? path.split('/')[1]! : undefined
      const isNewAccount = command.kind === 'Add' && account !== undefined && tx.children('./DMAcc/' + account) === undefined
      if (options.newAccountsOnly && typeof parsed !== 'number') {
        // An Add of an existing account's own node is left to the tree: 418, as a duplicate delivery expects.
        const refusal =
          command.kind !== 'Add' ? ONLY_NEW_ACCOUNTS
          : account === undefined ? `outside ./DMAcc: ${ONLY_NEW_ACCOUNTS}`
          : !isNewAccount && !created.has(account) && path !== `DMAcc/${account}` ? `./DMAcc/${account} exists: ${ONLY_NEW_ACCOUNTS}`
          : undefined
        if (refusal !== undefined) return `${where}: ${refusal}`
      }
      const status = command.kind === 'Add' ? tx.add(uri, value, 'device') : tx.replace(uri, value, 'device')
      if (status !== 200) return `${where}: ${status} ${STATUS_TEXT[status] ?? 'refused'}`
      writes++
      if (account !== undefined) touched.add(account)
      if (isNewAccount) created.add(account)
    }
    return undefined
  }

  const reason = run(message.body) ?? (writes === 0 ? 'the bootstrap message holds no Add or Replace' : undefined)
  if (reason !== undefined) {
    tx.rollback()
    return { ok: false, reason }
  }
  // ACLs travel in the message when the server wants them; an account it left without one is given to its
  // own server (as the CP bootstrap profile does for mapped accounts), not left open to every server.
  for (const x of created) {
    const serverId = readLeafText(tx, `./DMAcc/${x}/ServerID`)
    const acl = serverId ? creatorAcl(serverId) : undefined
    if (acl && readLeafText(tx, `./DMAcc/${x}?prop=ACL`) === '') tx.replace(`./DMAcc/${x}?prop=ACL`, { format: 'chr', data: acl }, 'device')
  }
  const serverIds: string[] = []
  for (const x of touched) {
    const id = readLeafText(tx, `./DMAcc/${x}/ServerID`)
    if (id !== undefined && !serverIds.includes(id)) serverIds.push(id)
  }
  const committed = tx.commit()
  if (!committed.ok) return { ok: false, reason: `invalid account: ${committed.failure.messages.join('; ')}` }
  return { ok: true, serverIds, undo: committed.undo }
}
