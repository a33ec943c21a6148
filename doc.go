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
//   - middleware: the stateless middlewares (RecoverPanics,
//     RejectUndecodable, Guard).
//   - wire: the vocabulary the parts share: headers, DLQ reasons, the
//     Delivery of a message, and the hand-off contract (offset holds,
//     senders) of the retry and DLQ middlewares.
//   - internal/consume: the consume path of the stack's consumer group: the
//     subscriber that drains on stop, the unmarshaler and offset holder that
//     tell the offset tracker what is handed out and held, and the scheduler
//     of handlers with WithConcurrency.
//   - internal/offsets: offset tracking, the heart of at-least-once: no
//     commit passes a record that is not settled.
//   - internal/txn: exactly-once hand-offs: the transactions that write
//     the retry and DLQ records with the offsets past their originals, and
//     which offsets a consumer delivers (transaction markers are not).
//   - internal/redeliver: the one path by which a record the stack reads
//     itself (a due retry, a reprocessed DLQ record) goes back to its
//     handler; internal/inorder: its in-order offset marks and per-handler
//     slots.
//   - internal/keyorder: key order across retries (KeepKeyOrder): the
//     parked keys and the records set aside behind them, in the state topic
//     {service}.parked, and their release.
//   - internal/growstack: grows the stack of the message goroutine at the
//     entry of the chain, for handlers that need it.
//   - internal/lograte: the rate limit of the per-record log lines;
//     internal/failurelog: those lines of the retry and DLQ middlewares
//     (WARN where the logger has it, one line per record given up at a
//     stop).
//   - internal/bounded: a context bound for the broker calls that take none.
//   - health: the monitoring endpoints on Echo and the operator console
//     (health/ui, embedded).
//   - kafkatest: the test kit: an embedded broker, and a harness that runs
//     a stack with a test's handlers and waits for retries and DLQ records.
//     (The broker itself is in internal/embedded, so that the root
//     package's internal tests can use it.)
//   - chaos: the reliability scenarios, run against cmd/embedded-kafka (the
//     embedded broker as a process of its own) or real Kafka; bench: the
//     benchmark figures; examples: the reference services.
//
// The root package, one file per feature:
//
//   - stack.go: the Stack, New and NewContext (a list of named build
//     steps), its accessors and Close.
//   - options.go: the options of New and of AddHandler.
//   - logger.go: NewSlogLogger, the default logger, with a warning level.
//   - router.go: what puts the stack on a router: Middlewares (the one
//     place the middleware order is written), Install, AddHandler and its
//     checks, and the router plugin.
//   - handlers.go: the handler list (Handlers, HandlerInfo) and the topics
//     the handlers consume.
//   - middlewares.go: the stack's own entry and metrics middlewares.
//   - metrics.go: the Prometheus registry (Gatherer, ResetMetrics), the
//     metrics middleware's observers and the lag and concurrency collectors.
//   - concurrency.go: concurrency within a partition: MaxConcurrency,
//     Ordering, StuckAfter and ConcurrencyStats.
//   - retry.go: the retry consumer and what the stack reports of retries
//     (RetryEnabled, RetryRunning, RetryTopics, RetryStats, RetryLanes).
//   - handoff.go: the producer of the retry records that are handed off.
//   - exactlyonce.go: exactly-once hand-offs (Producer.ExactlyOnceHandoffs):
//     the transactions of internal/txn, their Sender, the retry consumer's
//     claims and HandoffTransactions.
//   - keyorder.go: key order across retries: the parker's wiring, its
//     metrics and readiness warnings, ParkedKeys and ReleaseKey.
//   - dlq.go: the DLQ operations on the Stack (reprocessing, browsing).
//   - provision.go: the retry and DLQ topics and their creation.
//   - membership.go: static membership (Config.Consumer.InstanceID): the
//     instance ID of each consumer group member of the process.
//   - status.go: readiness and consumer lag.
//   - connect.go: the clients' connections bounded by Config.StartupTimeout,
//     and the errors of a start that is interrupted or times out.
//   - producer.go: the Producer; json.go: the JSON handler adapter;
//     unmarshaler.go: SafeUnmarshaler; errors.go: the package's errors.
//   - config*.go: the Config: its types, defaults, validation, redaction,
//     environment and sarama mapping.
//
// # The path of one record
//
//  1. Fetch: watermill-kafka's consumer group claims the partition; the
//     offset tracker (internal/offsets) sees the claim, and the offset handed
//     out (internal/consume, unmarshaler.go). For a handler with
//     WithConcurrency, the record's offset is held and the record
//     acknowledged at once, so that the next one follows while it waits for
//     its key and runs (internal/consume, scheduler.go).
//  2. The chain of [Stack.Middlewares] (router.go), outermost first. The
//     entry (middlewares.go) nacks unhandled a record of a draining
//     subscription (internal/consume, subscriber.go); otherwise it sets its
//     correlation ID.
//  3. Tracing: the trace context is extracted and a "process" span starts.
//  4. DLQ and retry middlewares wrap the handler; the handler runs, guarded
//     against panics and undecodable payloads.
//  5. On failure, a retry record (handoff.go) or, once retries are spent, a
//     DLQ record is handed off. The record's offset is held until the
//     broker acknowledges it, so the record can be acknowledged at once
//     without stalling its partition.
//  6. Offset release: acknowledgement marks the offset, held back below any
//     open hold; releasing a hold lets the mark move on.
//  7. Commit: with exactly-once hand-offs (exactlyonce.go, internal/txn),
//     the retry or DLQ record and the offsets, with the holds of the
//     records in the transaction counted as released, go in one
//     transaction; between hand-offs the offsets alone, on the commit
//     interval, and when a claim ends. Without them, sarama commits the
//     marked offsets on the commit interval and when a claim ends after its
//     holds are released (or lost).
//
// Due retries come back through the retry consumer (retry.go,
// delayedretry) and dispatch to the same handler, with the same chain.
package kafkaevents
