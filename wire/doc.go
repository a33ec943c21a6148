// Package wire is the vocabulary that the parts of kafkaevents share: what
// a retry or DLQ record carries and what a message says about itself.
//
//   - headers.go: the header names of retry and DLQ records, the DLQ
//     reasons (x-dlq-reason) and the time format of every timestamp header.
//   - failure.go: errors that carry a reason (Permanent, Undecodable,
//     WithReason, ReasonOf), the error a recovered panic becomes, and
//     ErrHandoff, the error of a record the broker did not acknowledge.
//   - delivery.go: the Delivery a middleware reads from a message (handler,
//     topic, partition, offset, key, source) and the Outcome it reports.
//   - hold.go, handoff.go, sender.go: the hand-off contract of the retry and
//     DLQ middlewares: hold the consumed offset, send the successor record,
//     release the hold once the broker acknowledged it (SendHeld), and the
//     record headers copied from a message.
//
// The middlewares themselves live in package middleware (stateless ones),
// delayedretry and dlq (stateful ones).
package wire
