/**
 * session.*, system.*, event.* and task.*: the messages every client needs before it does
 * anything else (reference §2, §4.1, §4.7).
 */
import { xapiFault } from '../fault.js'
import { SCHEMA } from '../db/schema.js'
import { formatXapiDate, WireDateTime, WireInt32, type WireValue } from '../wire/values.js'
import type { MethodRegistry } from './registry.js'

/** Generation counters as XAPI prints them: two 20-digit numbers, so tokens compare as strings. */
export function formatToken(generation: number): string {
  return `${String(generation).padStart(20, '0')},${'0'.padStart(20, '0')}`
}

function parseToken(token: string): number {
  if (token === '') return -1
  const match = /^(\d{1,20}),(\d{1,20})$/.exec(token)
  if (match === null) throw xapiFault('EVENT_FROM_TOKEN_PARSE_FAILURE', token)
  return Number(match[1])
}

/** Which objects a list of `*`, class names and `class/ref` entries selects. */
function subscription(classes: readonly string[]): (cls: string, ref: string) => boolean {
  const all = new Set<string>()
  const objects = new Set<string>()
  let everything = false
  for (const entry of classes) {
    if (entry === '*') everything = true
    else if (/^[A-Za-z_]+$/.test(entry)) all.add(entry.toLowerCase())
    else {
      const match = /^([A-Za-z_]+)\/(.+)$/.exec(entry)
      if (match === null) throw xapiFault('EVENT_SUBSCRIPTION_PARSE_FAILURE', entry)
      objects.add(`${match[1]!.toLowerCase()}/${match[2]}`)
    }
  }
  return (cls, ref) => {
    const lc = cls.toLowerCase()
    return everything || all.has(lc) || objects.has(`${lc}/${ref}`)
  }
}

/** `event.from` blocks at most this long, whatever the caller asks, so a stopping lab is never held up. */
const MAX_EVENT_WAIT_MS = 60_000
/** How long a woken `event.from` waits for more changes before it answers (XAPI's delay). */
const EVENT_FROM_DELAY_MS = 50

/** Waits `ms`, or less when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise(resolve => {
    const done = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}

export function addCoreMethods(registry: MethodRegistry, listMethods: () => string[]): void {
  registry.add({
    name: 'session.login_with_password',
    params: ['string', 'string', 'string', 'string'],
    defaulted: 2,
    session: false,
    handler: ({ pool, hostRef }, [user, password, , originator]) =>
      pool.login(user as string, password as string, (originator as string | undefined) ?? '', hostRef),
  })
  registry.add({
    name: 'session.logout',
    params: [],
    handler: ({ pool, sessionRef }) => {
      pool.logout(sessionRef)
      return ''
    },
  })
  // xapi_session: the subject identifiers of the externally authenticated sessions (not the
  // local superuser's), and logging all of one subject's sessions out but the caller's
  registry.add({
    name: 'session.get_all_subject_identifiers',
    params: [],
    handler: ({ pool }) => [
      ...new Set(
        [...pool.db.all('session')]
          .filter(([, session]) => session['is_local_superuser'] !== true && session['auth_user_sid'] !== '')
          .map(([, session]) => session['auth_user_sid'] as string),
      ),
    ],
  })
  registry.add({
    name: 'session.logout_subject_identifier',
    params: ['string'],
    handler: ({ pool, sessionRef }, [sid]) => {
      for (const [ref, session] of [...pool.db.all('session')])
        if (ref !== sessionRef && session['auth_user_sid'] === sid) pool.logout(ref)
      return ''
    },
  })
  for (const name of ['host.get_servertime']) {
    registry.add({
      name,
      params: ['string'],
      handler: ({ pool }, [host]) => {
        pool.db.get('host', host as string)
        return new WireDateTime(formatXapiDate(new Date()))
      },
    })
  }
  registry.add({ name: 'system.listMethods', params: [], session: false, handler: () => listMethods() })

  registry.add({
    name: 'event.inject',
    params: ['string', 'string'],
    handler: ({ pool }, [cls, ref]) => {
      const spec = [...SCHEMA.values()].find(s => s.name.toLowerCase() === (cls as string).toLowerCase())
      if (spec === undefined || pool.db.find(spec.name, ref as string) === undefined)
        throw xapiFault('HANDLE_INVALID', cls as string, ref as string)
      // The token is from just before the change, so the next event.from sees the `mod`.
      const token = formatToken(pool.db.generation)
      pool.db.touch(ref as string)
      return token
    },
  })

  registry.add({
    name: 'event.from',
    params: ['set', 'string', 'float'],
    handler: async ({ pool }, [classes, token, timeout]) => {
      const since = parseToken(token as string)
      const accept = subscription(classes as readonly string[])
      const deadline = Date.now() + Math.min(MAX_EVENT_WAIT_MS, Math.max(0, (timeout as number) * 1000))
      let changes = pool.db.changesSince(since, accept)
      while (changes.length === 0 && Date.now() < deadline && !pool.closing.aborted) {
        await pool.db.waitForChange(deadline - Date.now(), pool.closing)
        // As XAPI does once a change woke it (xapi_event.ml: `Thread.delay 0.05`): a burst of
        // changes (a task's progress, then its completion) comes back in one answer.
        if (Date.now() < deadline) await pause(Math.min(EVENT_FROM_DELAY_MS, deadline - Date.now()), pool.closing)
        changes = pool.db.changesSince(since, accept)
      }
      const events: WireValue[] = changes.map(change => {
        const base = {
          id: String(change.generation),
          timestamp: '0.0',
          class: change.cls.toLowerCase(),
          operation: change.operation,
          ref: change.ref,
        }
        return change.operation === 'del' ? base : { ...base, snapshot: pool.db.toWire(change.cls, change.ref) }
      })
      const counts: Record<string, WireValue> = {}
      for (const spec of SCHEMA.values()) counts[spec.name.toLowerCase()] = new WireInt32(pool.db.count(spec.name))
      return { events, valid_ref_counts: counts, token: formatToken(pool.db.generation) }
    },
  })

  // The deprecated API the JS client falls back to when event.inject is unknown.
  registry.add({
    name: 'event.register',
    params: ['set'],
    handler: ({ pool, sessionRef }, [classes]) => {
      subscription(classes as readonly string[])
      const entry = pool.eventRegistrations.get(sessionRef) ?? { classes: new Set<string>(), since: pool.db.generation }
      for (const cls of classes as readonly string[]) entry.classes.add(cls)
      pool.eventRegistrations.set(sessionRef, entry)
      return ''
    },
  })
  registry.add({
    name: 'event.unregister',
    params: ['set'],
    handler: ({ pool, sessionRef }, [classes]) => {
      const entry = pool.eventRegistrations.get(sessionRef)
      for (const cls of classes as readonly string[]) entry?.classes.delete(cls)
      return ''
    },
  })
  registry.add({
    name: 'event.next',
    params: [],
    handler: async ({ pool, sessionRef }) => {
      const entry = pool.eventRegistrations.get(sessionRef)
      if (entry === undefined) throw xapiFault('SESSION_NOT_REGISTERED', sessionRef)
      // Blocks until something changes, like XAPI; a stopping lab or a logout ends the wait.
      for (;;) {
        const accept = subscription([...entry.classes])
        const changes = pool.db.changesSince(entry.since, accept)
        if (changes.length > 0 || pool.closing.aborted || !pool.isSession(sessionRef)) {
          entry.since = pool.db.generation
          return changes.map(change => ({
            id: String(change.generation),
            timestamp: '0.0',
            class: change.cls.toLowerCase(),
            operation: change.operation,
            ref: change.ref,
            obj_uuid:
              change.operation === 'del'
                ? (change.uuid ?? '')
                : (pool.db.get(change.cls, change.ref)['uuid'] as string),
            ...(change.operation === 'del' ? {} : { snapshot: pool.db.toWire(change.cls, change.ref) }),
          }))
        }
        await pool.db.waitForChange(MAX_EVENT_WAIT_MS, pool.closing)
      }
    },
  })

  registry.add({
    name: 'task.create',
    params: ['string', 'string'],
    handler: ({ pool }, [label, description]) => pool.tasks.create(label as string, description as string).ref,
  })
  registry.add({
    name: 'task.cancel',
    params: ['string'],
    handler: ({ pool }, [ref]) => {
      pool.db.get('task', ref as string)
      pool.tasks.cancel(ref as string)
      return ''
    },
  })
  registry.add({
    name: 'task.destroy',
    params: ['string'],
    handler: ({ pool }, [ref]) => {
      pool.tasks.destroy(ref as string)
      return ''
    },
  })
  registry.add({
    name: 'task.set_progress',
    params: ['string', 'float'],
    handler: ({ pool }, [ref, progress]) => {
      pool.db.get('task', ref as string)
      pool.tasks.pending(ref as string)?.setProgress(progress as number)
      return ''
    },
  })
}
