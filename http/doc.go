// Package http serves Tone's REST API under /api/v1: JSON over chi, with the
// error envelope, correlation ids, rate limits, metrics and OpenAPI document
// described in docs/api.md.
//
// It carries requests into package domain and back; it holds no business
// rules of its own beyond turning JSON into domain calls and domain errors
// into statuses (see statusOf, the one table that maps them). Import it as
// tonehttp next to net/http.
//
// A Server is safe for concurrent use.
package http
