// MQTT.js keeps the topic aliases it sends in an LRUCache (lib/topic-alias-send.js), and the agent announces no
// alias maximum, so that code never runs; the lru-cache package is still bundled for it (16 KB minified). This is
// the part of its API that file uses, on a Map: get marks an entry as the most recently used, set evicts the least
// recently used past `max`, and keys() yields the most recently used first, as lru-cache's does.
'use strict'

class LRUCache {
  #max
  #map = new Map()

  constructor(options) {
    this.#max = options.max
  }

  get size() {
    return this.#map.size
  }

  get(key) {
    if (!this.#map.has(key)) return undefined
    const value = this.#map.get(key)
    this.#map.delete(key)
    this.#map.set(key, value)
    return value
  }

  set(key, value) {
    this.#map.delete(key)
    this.#map.set(key, value)
    if (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value)
    return this
  }

  has(key) {
    return this.#map.has(key)
  }

  delete(key) {
    return this.#map.delete(key)
  }

  clear() {
    this.#map.clear()
  }

  *keys() {
    yield* [...this.#map.keys()].reverse()
  }
}

module.exports = { LRUCache }
