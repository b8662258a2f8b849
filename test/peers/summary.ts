/** One-line descriptions of messages, for the peers' traffic log and the command line. */
import type { ParsedCommand, ParsedMessage } from './syncml.ts'

function describeCommand(c: ParsedCommand): string {
  switch (c.name) {
    case 'Status':
      return `Status(${c.cmd ?? '?'}#${c.cmdRef ?? '?'} ${c.data ?? '?'}${c.chal?.nextNonce ? ' +Chal' : ''})`
    case 'Alert': {
      const types = c.items.map((i) => i.meta.type).filter((t): t is string => Boolean(t))
      return `Alert ${c.data ?? '?'}${types.length ? ` [${types.join(', ')}]` : ''}`
    }
    case 'Atomic':
    case 'Sequence':
      return `${c.name}{${(c.children ?? []).map(describeCommand).join(', ')}}`
    default: {
      const uris = c.items.map((i) => i.target ?? i.source).filter((u): u is string => Boolean(u))
      return `${c.name}${uris.length ? ` ${uris.join(' ')}` : ''}`
    }
  }
}

export function describeMessage(m: ParsedMessage): string {
  const cred = m.hdr.cred ? ' Cred' : ''
  const body = m.commands.map(describeCommand).join(', ')
  return `SessionID ${m.hdr.sessionId} MsgID ${m.hdr.msgId} ${m.hdr.source} -> ${m.hdr.target}${cred}: ${body || '(no commands)'}${m.final ? ' Final' : ''}`
}
