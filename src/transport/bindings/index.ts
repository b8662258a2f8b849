/**
 * The two bindings behind the sessions' one port (binding.md §2, §10), one file each beside this one, chosen per
 * account: a message whose party's account says `Ext/GwmoAgent/Binding` = `http` carries an HTTP route and is
 * POSTed; every other one is published over MQTT (to the broker its `mqtt://` AppAddr names, if any). Both hand
 * what they receive to the same handlers; only the broker has a connection to be online on.
 */
import type { Transport, TransportEvents } from '../../session/port.ts'

export function bindings(mqtt: Transport, http: Transport): Transport {
  return {
    async start(events: TransportEvents) {
      await http.start(events)
      await mqtt.start(events)
    },
    send: (message) => (message.http !== undefined ? http.send(message) : mqtt.send(message)),
    async stop() {
      await http.stop()
      await mqtt.stop()
    },
  }
}
