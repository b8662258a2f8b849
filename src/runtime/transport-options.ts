/**
 * The MQTT binding's options from the agent's configuration: the transport itself knows nothing of the
 * configuration file.
 */
import type { AgentConfig, BrokerTls } from '../config.ts'
import type { Logger } from '../log.ts'
import type { MqttTransportOptions } from '../transport/bindings/mqtt.ts'

/** The transport options of an agent configuration; `tls` is the PEM material that `readBrokerTls` read. */
export function mqttOptionsFromConfig(config: AgentConfig, tls: BrokerTls, logger: Logger): MqttTransportOptions {
  const { broker } = config
  return {
    url: broker.url,
    ...(broker.username !== undefined && { username: broker.username }),
    ...(broker.password !== undefined && { password: broker.password }),
    ...tls,
    clientId: broker.clientId,
    keepaliveSeconds: broker.keepaliveSeconds,
    prefix: config.topicPrefix,
    deviceId: config.deviceId,
    maxPacketSize: config.maxPacketSize,
    logger,
  }
}
