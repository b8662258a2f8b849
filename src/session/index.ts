/** The DM session engine: sessions with authentication both ways, over any transport (binding.md §3, §6). */
export { createSessionManager, type OpenRequest, type SessionEndInfo, type SessionManager, type SessionManagerDeps } from './manager.ts'
export { AgentState, AGENT_STATE_VERSION, STATE_NAMESPACE, type GenericAlertSpec, type JsonValue, type PendingAlert } from './agent-state.ts'
export type { AlertContext, AlertHandler, AlertRegistrationOptions } from './alerts.ts'
export { DEFAULT_SESSION_CONSTANTS, sessionConstants, type SessionConstants } from './constants.ts'
export type { Clock, SessionTree } from './engine.ts'
export type { PartyInfo, SessionInfo } from './handlers/context.ts'
export type { SessionOutcome } from './session.ts'
