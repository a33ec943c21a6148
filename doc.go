// Package kafkaevents turns a plain Watermill router on Kafka into a
// production-grade event consumer: non-blocking delayed retries, a dead-letter
// queue with per-topic reprocessing, correlation IDs, OpenTelemetry tracing
// and monitoring endpoints, all added to the *message.Router a service already
// has.
//
// A service builds a [Stack] from a [Config], installs it on its router with
// [Stack.Install] (which only calls router.AddMiddleware and
// router.AddPlugin), registers its handlers with [Stack.AddHandler] and runs the
// router as usual.
//
// # Map
//
// The root package wires the pieces; each job has a package of its own:
//
//   - correlation: the x-correlation-id of a record (explicit, inherited or
//     generated) in its context and on what its handler publishes.
//   - tracing: the OpenTelemetry spans and the trace context in headers.
//   - delayedretry: the retry middleware, its policies and lanes, and the
//     consumer that delivers due retry records back.
//   - dlq: the dead-letter middleware, browsing and per-topic reprocessing.
//   - dispatch: hands due retries and reprocessed DLQ records to the router
//     handler they belong to.
//   - middleware: the hand-off contract (offset holds, Guard, headers) the
//     retry and DLQ middlewares share.
//   - internal/offsets: offset tracking, the heart of at-least-once: no
//     commit passes a record that is not settled.
//   - internal/inorder: in-order offset marks and per-handler slots for the
//     retry consumer and the DLQ reprocessor, which hand a partition's
//     records to a concurrent handler beside each other.
//   - internal/lograte: the rate limit of the per-record INFO lines.
//   - health: the monitoring endpoints on Echo and the operator console
//     (health/ui, embedded).
//   - kafkatest: the test kit: an embedded broker, and a harness that runs
//     a stack with a test's handlers and waits for retries and DLQ records.
//     (The broker itself is in internal/embedded, so that the root
//     package's internal tests can use it.)
//
// In the root package, stack.go builds the Stack (New is a list of named
// steps), options.go holds its options, install.go puts it on a router,
// middlewares.go holds its own entry and metrics middlewares,
// keyflow.go schedules a partition's records by key for handlers with
// WithConcurrency,
// retryconsumer.go starts the retry-topic consumer, retry_lanes.go reports
// the backlog of each retry topic, drain.go lets a shutdown
// finish the records in flight, startup.go words the errors of a start that
// is interrupted or times out, status.go computes readiness and lag,
// dlq_ops.go holds the DLQ operations, and the config*.go files hold the
// Config: its types, defaults, validation, redaction, environment and sarama
// mapping.
//
// # The path of one record
//
//  1. Fetch: watermill-kafka's consumer group claims the partition; the
//     offset tracker (internal/offsets) sees the claim and the offset handed
//     out. For a handler with WithConcurrency, the record's offset is held
//     and the record acknowledged at once, so that the next one follows
//     while it waits for its key and runs (keyflow.go).
//  2. Entry (middlewares.go): a record of a draining subscription is nacked
//     unhandled; otherwise its correlation ID is set.
//  3. Tracing: the trace context is extracted and a "process" span starts.
//  4. DLQ and retry middlewares wrap the handler; the handler runs, guarded
//     against panics and undecodable payloads.
//  5. On failure, a retry record (or, once retries are spent, a DLQ record)
//     is handed off. The record's offset is held until the broker
//     acknowledges it, so the record can be acknowledged at once without
//     stalling its partition.
//  6. Offset release: acknowledgement marks the offset, held back below any
//     open hold; releasing a hold lets the mark move on.
//  7. Commit: sarama commits the marked offsets on the commit interval, and
//     when a claim ends after its holds are released (or lost).
//
// Due retries come back through the retry consumer (retryconsumer.go) and
// dispatch to the same handler, with the same chain.
package kafkaevents
