import type { ContainerCommand } from '../../codec/syncml-model.ts'
import type { HandlerContext } from './context.ts'

/**
 * Sequence (OMA DM Protocol 1.2, 6.6.12): the commands run in the order given, each answered with its own
 * Status; the Sequence itself gets 200. A failing command does not stop the rest (Sequence orders, Atomic is
 * what makes commands depend on each other); only a Session Abort inside it does.
 */
export async function handleSequence(cmd: ContainerCommand, ctx: HandlerContext): Promise<void> {
  const scope = ctx.reply.scope()
  for (const inner of cmd.commands) {
    if (ctx.aborted) break
    await ctx.dispatch(inner, scope, ctx.ops)
  }
  if (!ctx.aborted) ctx.reply.containerDone(cmd, scope)
}
