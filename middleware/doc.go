// Package middleware holds the vocabulary that every part of kafkaevents
// shares: the wire contract (header names and DLQ reasons), the
// classification of failures (permanent, undecodable), the description of a
// delivery that middlewares read from a message, and the stateless
// middlewares (panic recovery, handler identity).
//
// Stateful components live in their own packages (delayedretry, dlq,
// correlation, tracing) and expose their middleware as a method value, for
// example router.AddMiddleware(retrier.Middleware).
package middleware
