// Package consume is the consume path every record of the stack's consumer
// group takes between watermill-kafka and the router.
//
//   - subscriber.go: [Subscriber], the wrapper of watermill-kafka's
//     subscriber. When its router stops or the stack closes, a
//     subscription drains: what it still hands out is refused unhandled,
//     and the subscription underneath stays open until the records in
//     flight are settled and their offsets marked, so that closing it
//     commits them.
//   - unmarshaler.go: [HandOutUnmarshaler], which tells the offset tracker
//     the offset each partition hands out, and [OffsetHolder], which holds
//     the offset of a message for the retry and DLQ hand-offs.
//   - scheduler.go: the scheduler of a handler with a concurrency above 1:
//     it takes a partition's records beside each other, in offset order
//     per key, within a window of [Settings].Concurrency records.
//   - stats.go: what those handlers have in flight, for the metrics and
//     the readiness warnings.
//
// The offsets themselves are tracked by internal/offsets.
package consume
