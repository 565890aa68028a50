/**
 * The only three places xen-cr reaches into private fields of a `xen-api` `Xapi`. Both are valid
 * for the exact version pinned in package.json (4.7.6) and no other: a rename upstream would
 * turn them into silent no-ops, so `xen-api-internals.test.ts` checks on every run that the
 * fields are there and still do what these overrides rely on. Upgrading xen-api means
 * re-reading its `index.mjs` for these fields and re-running that test.
 */
import type { Xapi } from 'xen-api'

/**
 * Makes `xen-api` hand HOST_IS_SLAVE from `session.login_with_password` to its caller instead
 * of retrying by itself: its retry swaps only the hostname, which reaches the wrong port when
 * the coordinator listens elsewhere, and hides the coordinator's address from `openSession`,
 * which follows `address[:port]` itself. `_sessionOpenRetryOptions` is a per-instance field
 * (default `{ tries: 2, when: { code: 'HOST_IS_SLAVE' } }`) that `_sessionOpen` reads at each
 * login, so it is set once, before `connect()`.
 */
export function disableInternalMasterFollow(xapi: Xapi): void {
  const internals = xapi as unknown as { _sessionOpenRetryOptions?: { tries: number } }
  if (internals._sessionOpenRetryOptions !== undefined) {
    internals._sessionOpenRetryOptions = { ...internals._sessionOpenRetryOptions, tries: 1 }
  }
}

/**
 * Closes `xen-api`'s HTTP connection pool (the undici dispatcher it keeps in
 * `_undiciDispatcher`), cutting requests still in flight. `disconnect()` does not: a login that
 * a host never answers keeps its socket for `httpInactivityTimeout` (5 minutes), and with it the
 * process — an aborted run would wait for the CLI's 5 s watchdog instead of exiting at once.
 * Only for a client that is being dropped.
 */
export function closeConnections(xapi: Xapi): void {
  const internals = xapi as unknown as { _undiciDispatcher?: { destroy(): Promise<void> } }
  void internals._undiciDispatcher?.destroy().catch(() => undefined)
}

/**
 * Makes `xen-api` hand SESSION_INVALID to its caller (after dropping the session) instead of
 * logging in again inside the failed call. Its renewal (`_sessionCallRetryOptions`, default
 * `{ tries: 2, when: SESSION_INVALID, onRetry: _sessionOpen }`) clears the session id while it
 * logs in, and every other call made meanwhile dies on xen-api's
 * `assert.notStrictEqual(sessionId, undefined)` — the `Expected "actual" to be strictly unequal
 * to: undefined` a pass used to report. `XapiClient.call` logs in once (a coalesced `connect()`)
 * for every waiting call and retries them. Set once, before `connect()`.
 */
export function disableInternalSessionRenewal(xapi: Xapi): void {
  const internals = xapi as unknown as { _sessionCallRetryOptions?: { tries: number } }
  if (internals._sessionCallRetryOptions !== undefined) {
    internals._sessionCallRetryOptions = { ...internals._sessionCallRetryOptions, tries: 1 }
  }
}
