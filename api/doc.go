// Package api serves heartlog over HTTP: the WakaTime-compatible routes that
// every WakaTime plugin reaches through wakatime-cli, the Connect services
// (Connect, gRPC and gRPC-Web on one port), health checks and metrics.
//
// Ingest answers 2xx only after the log has stored the heartbeats. Every
// route authenticates with an API key and acts only as the key's owner:
// a path naming another user is refused, never served. This package must
// never log an API key or a request body.
package api
