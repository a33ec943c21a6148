// Package middleware holds the stateless Watermill middlewares of
// kafkaevents: RecoverPanics (a handler panic becomes a *wire.PanicError),
// RejectUndecodable (a record the unmarshaler could not decode fails as
// wire.Undecodable without reaching the handler) and Guard (both in one
// frame; what the stack installs innermost).
//
// Stateful components live in their own packages (delayedretry, dlq,
// correlation, tracing) and expose their middleware as a method value, for
// example router.AddMiddleware(retrier.Middleware). The vocabulary they share
// (headers, reasons, deliveries, the hand-off contract) is package wire.
package middleware
