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
package kafkaevents
