// Package heartlogtest starts real services for heartlog's tests: an
// embedded JetStream server on a temporary store, a fresh Postgres database
// in the server that HEARTLOG_POSTGRES_URL names (make test starts one) or
// in a private Postgres cluster that a test may stop (StartPostgres),
// and a whole heartlog (API, publisher, Postgres processor) wired as
// `heartlog dev` wires it. Nothing here is a mock.
package heartlogtest
