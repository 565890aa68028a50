'use strict'
// Shim of @vates/disposable/debounceResource.js: disposing a resource is put off by `delay` ms
// (default: the function's `defaultDelay`, 0 = at once); `flushAll()` disposes every pending one now.
const Disposable = require('promise-toolbox/Disposable')

exports.createDebounceResource = function createDebounceResource() {
  const pending = new Set()
  function debounceResource(resource, delay = debounceResource.defaultDelay) {
    return Promise.resolve(resource).then(r => {
      if (!(delay > 0)) return r
      return new Disposable(() => {
        const entry = { timer: undefined, dispose: () => r.dispose() }
        entry.timer = setTimeout(() => {
          pending.delete(entry)
          return entry.dispose()
        }, delay)
        pending.add(entry)
      }, r.value)
    })
  }
  debounceResource.defaultDelay = 0
  debounceResource.flushAll = async () => {
    const all = [...pending]
    pending.clear()
    for (const entry of all) clearTimeout(entry.timer)
    await Promise.all(all.map(entry => entry.dispose()))
  }
  return debounceResource
}
