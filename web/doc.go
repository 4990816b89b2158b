// Package web owns Dashtam's HTTP surface: the Echo server, its OpenAPI
// document (openapi.yaml, the source of truth from which package api is
// generated), request validation, RFC 9457 problem details, trace ids,
// access logs, Prometheus metrics, and the offline documentation pages.
//
// Handlers implement api.StrictServerInterface; anything they return as an
// error goes through one mapping (errors.go) to an HTTP problem, so no
// handler writes an error response by hand.
package web
