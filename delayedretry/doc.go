// Package delayedretry retries failed Kafka messages without blocking their
// topic.
//
// The Retrier middleware turns a retryable handler failure into a retry record
// on a retry topic, stamped with the attempt number and its due time
// (x-retry-after), and acknowledges the original only after the broker
// acknowledged that record. The Consumer reads the retry topics, holds each
// record until it is due (never earlier) and dispatches it to exactly the
// handler that failed, through the same middleware chain, so the next failure
// becomes the next attempt or, once attempts are exhausted, goes to the DLQ.
//
// Retry topics are delay lanes by default: one topic per distinct delay of the
// registered policies ({service}.retry.300ms, {service}.retry.5s, …). Inside a
// lane due times only grow, so a retry due in 300 ms never waits behind one due
// in 30 s. ModeSingle uses one topic, {service}.retry, as the NestJS package
// did: simpler, but a long delay at the head of a partition holds back shorter
// ones behind it.
//
// Files:
//   - retrier.go: the Retrier middleware, its Config and Mode, and the
//     delay lanes (LaneTopic).
//   - policy.go: Policy, the attempts and delays of one handler.
//   - consumer.go: the Consumer of the retry topics; it hands due records
//     back through internal/redeliver, the path the DLQ reprocessor takes
//     too.
//   - held.go: the records the Consumer holds until they are due.
//   - metrics.go: the retry counters and lateness, as Stats and Prometheus
//     collectors.
//
// Tests: retrier_test.go, policy_test.go, metrics_test.go, the fuzz test of
// the retry headers in parse_fuzz_test.go, and the runnable examples in
// example_test.go; the Consumer is tested through the Stack in the root
// package.
package delayedretry
