import type { Command } from '../../codec/syncml-model.ts'
import { handleAdd } from './add.ts'
import { handleAlert } from './alert.ts'
import { handleAtomic } from './atomic.ts'
import type { CommandHandler, HandlerContext } from './context.ts'
import { handleCopy } from './copy.ts'
import { handleDelete } from './delete.ts'
import { handleExec } from './exec.ts'
import { handleGet } from './get.ts'
import { handleReplace } from './replace.ts'
import { handleResults } from './results.ts'
import { handleSequence } from './sequence.ts'
import { handleStatus } from './status.ts'
import { handleUnknown } from './unknown.ts'

type HandlerTable = { [K in Command['kind']]: CommandHandler<Extract<Command, { kind: K }>> }

/** One handler per command (STYLE.md), dispatched from this table. */
const HANDLERS: Readonly<HandlerTable> = Object.freeze({
  Get: handleGet,
  Add: handleAdd,
  Replace: handleReplace,
  Delete: handleDelete,
  Exec: handleExec,
  Copy: handleCopy,
  Atomic: handleAtomic,
  Sequence: handleSequence,
  Alert: handleAlert,
  Status: handleStatus,
  Results: handleResults,
  Unknown: handleUnknown,
})

export function dispatchCommand(command: Command, ctx: HandlerContext): void | Promise<void> {
  const handler = HANDLERS[command.kind] as CommandHandler
  return handler(command, ctx)
}

export type { CommandHandler, HandlerContext, MessageOps, PartyInfo, SessionInfo } from './context.ts'
