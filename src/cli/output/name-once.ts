/**
 * `job "slow": <message>`, unless the message already names job "slow" (most of our errors name
 * their object), so a line never reads `job "slow": job "slow" is already running`.
 */
export function nameOnce(kind: string, name: string, message: string, prefix = `${kind} "${name}"`): string {
  const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  const named = new RegExp(`(^|[^\\w-])${escape(kind)} "?${escape(name)}"?(?![\\w-])`)
  return named.test(message) ? message : `${prefix}: ${message}`
}
