/**
 * Applying a bootstrap message (OMA DM Bootstrap 1.2, DM profile): a SyncML DM message holding only Add and
 * Replace commands (possibly inside Atomic or Sequence) and Final. It is applied in one transaction as the
 * device, all or nothing, so that a duplicate delivery of an Add bootstrap fails cleanly with nothing changed.
 * Both the factory bootstrap of a first start and the local DM Bootstrap Server go through here.
 */
import type { Command, ItemCommand, SyncMLMessage } from '../codec/syncml-model.ts'
import { touchedAccounts } from './account-rules.ts'
import { creatorAcl, isValidAcl } from './acl.ts'
import { canonicalFormat } from './formats.ts'
import type { NodeValue, Transaction } from './types.ts'
import { parseUri } from './uri.ts'

export type BootstrapResult = { ok: true; serverIds: string[] } | { ok: false; reason: string }

/** Anything a bootstrap can run in: the tree, or an enclosing transaction. */
export interface BootstrapTarget {
  begin(): Transaction
}

const STATUS_TEXT: Record<number, string> = {
  400: 'bad request', 404: 'not found', 405: 'not allowed', 406: 'not supported', 414: 'URI too long',
  415: 'data does not fit its format', 418: 'already exists', 420: 'tree full', 425: 'permission denied',
  500: 'failed',
}

export function applyBootstrap(tree: BootstrapTarget, message: SyncMLMessage): BootstrapResult {
  // OMA DM Protocol 1.2, 5.1.4: Final closes the package; a bootstrap is one whole package in one message.
  if (!message.final) return { ok: false, reason: 'the bootstrap message has no Final' }
  const tx = tree.begin()
  const written: string[] = []
  const createdAccounts = new Set<string>()

  const run = (commands: Command[]): string | undefined => {
    for (const command of commands) {
      if (command.kind === 'Atomic' || command.kind === 'Sequence') {
        const reason = run(command.commands)
        if (reason !== undefined) return reason
      } else if (command.kind === 'Add' || command.kind === 'Replace') {
        const reason = write(command)
        if (reason !== undefined) return reason
      } else {
        const name = command.kind === 'Unknown' ? command.name : command.kind
        return `${name} (CmdID ${command.cmdId}): not allowed in a bootstrap (only Add and Replace)`
      }
    }
    return undefined
  }

  const write = (command: ItemCommand): string | undefined => {
    const where = `${command.kind} (CmdID ${command.cmdId})`
    if (command.items.length === 0) return `${where}: no Item`
    for (const item of command.items) {
      const uri = item.target?.locUri
      if (uri === undefined || uri === '') return `${where}: an Item has no Target`
      if (item.moreData) return `${command.kind} ${uri} (CmdID ${command.cmdId}): large objects are not taken in a bootstrap`
      const formatName = item.meta?.format ?? command.meta?.format ?? 'chr'
      const format = canonicalFormat(formatName)
      if (format === undefined) return `${command.kind} ${uri} (CmdID ${command.cmdId}): unknown format '${formatName}'`
      const value: NodeValue = { format }
      const type = item.meta?.type ?? command.meta?.type
      if (type !== undefined) value.type = type
      if (item.data !== undefined) value.data = item.data
      const parsed = parseUri(uri)
      const path = typeof parsed === 'number' ? undefined : parsed.path
      const isNewAccount = command.kind === 'Add' && path !== undefined && /^DMAcc\/[^/]+/.test(path) &&
        tx.children('./' + path.split('/').slice(0, 2).join('/')) === undefined
      const status = command.kind === 'Add' ? tx.add(uri, value, 'device') : tx.replace(uri, value, 'device')
      if (status !== 200) {
        return `${command.kind} ${uri} (CmdID ${command.cmdId}): ${status} ${STATUS_TEXT[status] ?? 'refused'}`
      }
      if (path !== undefined) {
        written.push(path)
        if (isNewAccount) createdAccounts.add(path.split('/')[1]!)
      }
    }
    return undefined
  }

  const reason = run(message.body)
  if (reason !== undefined) {
    tx.rollback()
    return { ok: false, reason }
  }
  if (written.length === 0) {
    tx.rollback()
    return { ok: false, reason: 'the bootstrap message holds no Add or Replace' }
  }
  // ACLs travel in the message when the server wants them; an account it left without one is given to its
  // own server (as the CP bootstrap profile does for mapped accounts), not left open to every server.
  for (const x of createdAccounts) {
    const acl = tx.get(`./DMAcc/${x}?prop=ACL`, 'device')
    const serverId = textOf(tx.get(`./DMAcc/${x}/ServerID`, 'device').value?.data)
    if (acl.value?.data === '' && serverId && isValidAcl(creatorAcl(serverId))) {
      tx.replace(`./DMAcc/${x}?prop=ACL`, { format: 'chr', data: creatorAcl(serverId) }, 'device')
    }
  }
  const serverIds: string[] = []
  for (const x of touchedAccounts(written)) {
    const id = textOf(tx.get(`./DMAcc/${x}/ServerID`, 'device').value?.data)
    if (id !== undefined && !serverIds.includes(id)) serverIds.push(id)
  }
  const committed = tx.commit()
  if (!committed.ok) return { ok: false, reason: `invalid account: ${committed.failure.messages.join('; ')}` }
  return { ok: true, serverIds }
}

function textOf(data: string | Uint8Array | undefined): string | undefined {
  return data === undefined ? undefined : typeof data === 'string' ? data : new TextDecoder().decode(data)
}
