'use strict'
// Shim of @vates/disposable/deduped.js: calls of a disposable factory whose `keyFn` gives the same
// key while a resource is in use share that one resource; it is disposed when the last of its
// users disposes its handle.
const Disposable = require('promise-toolbox/Disposable')

exports.deduped = function deduped(factory, keyFn = (...args) => args) {
  const shared = new Map()
  return function dedupedFactory(...args) {
    const key = JSON.stringify(keyFn.apply(this, args))
    let entry = shared.get(key)
    if (entry === undefined) {
      entry = { users: 0, resource: Promise.resolve(factory.apply(this, args)) }
      shared.set(key, entry)
      entry.resource.catch(() => shared.delete(key))
    }
    const mine = entry
    mine.users++
    return mine.resource.then(
      resource =>
        new Disposable(async () => {
          if (--mine.users === 0) {
            shared.delete(key)
            await resource.dispose()
          }
        }, resource.value),
      error => {
        mine.users--
        throw error
      },
    )
  }
}
