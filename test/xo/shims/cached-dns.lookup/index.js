'use strict'
// Shim of @vates/cached-dns.lookup: dns.lookup with successful answers kept one minute per
// hostname and family (errors are not kept); patchGlobal() puts it in place of dns.lookup and
// returns the function that restores it.
const dns = require('node:dns')
exports.createCachedLookup = function createCachedLookup({ lookup = dns.lookup } = {}) {
  const cache = new Map()
  function cachedLookup(hostname, options, callback) {
    if (typeof options === 'function') [callback, options] = [options, {}]
    const { all = false, family = 0 } = typeof options === 'number' ? { family: options } : (options ?? {})
    const key = `${hostname}/${family}`
    const answer = results => (all ? callback(null, results) : callback(null, results[0].address, results[0].family))
    const hit = cache.get(key)
    if (hit !== undefined && hit.expires > Date.now()) return setImmediate(answer, hit.results)
    lookup(hostname, { all: true, family, verbatim: true }, (error, results) => {
      if (error != null) return callback(error)
      cache.set(key, { results, expires: Date.now() + 60e3 })
      answer(results)
    })
  }
  cachedLookup.patchGlobal = () => {
    const previous = dns.lookup
    dns.lookup = cachedLookup
    return () => {
      dns.lookup = previous
    }
  }
  return cachedLookup
}
