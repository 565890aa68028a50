/**
 * The version of the `--json` output (`docs/events.schema.json`), written into every line as
 * `schemaVersion`. It changes when a kind or a field is removed or changes meaning, so a consumer
 * can refuse what it does not understand; adding a kind or an optional field keeps it.
 */
export const EVENTS_SCHEMA_VERSION = 1
