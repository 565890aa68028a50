'use strict'
// Shim of @vates/parse-duration: a number is milliseconds, a string is parsed with `ms`
// ("5m", "1 hour"); anything else, or a string `ms` cannot read, is an error.
const ms = require('ms')
exports.parseDuration = function parseDuration(value) {
  if (typeof value === 'number') return value
  if (typeof value === 'string') {
    const n = ms(value)
    if (typeof n === 'number' && !Number.isNaN(n)) return n
  }
  throw new TypeError(`not a valid duration: ${JSON.stringify(value)}`)
}
