// Package redeliver is the one path by which a record read from Kafka by the
// stack itself, not by the router, goes back to its handler: the retry
// consumer (package delayedretry) delivers due retry records this way, and
// the DLQ reprocessor (package dlq) reprocessed DLQ records.
//
// Both read a partition themselves, one record after another. For each
// record they build a [Record] (the message's UUID, payload and metadata,
// and the [wire.Delivery] that tells the handler where it comes from), turn
// it into the Watermill message that [dispatch.Dispatcher.Deliver] hands to
// the handler ([Record.Message]), and track the record in a [Partition]:
// [Partition.Admit] registers its offset, which is marked only once it and
// every record before it are done, and [Partition.Run] runs its delivery in
// line or, for a handler that takes several records at once
// (kafkaevents.WithConcurrency), beside the reader.
//
// What each caller decides stays with it: which headers become metadata,
// when a record is due, how a rejected delivery is retried or counted.
//
// Files:
//   - record.go: [Record], a record on its way back to its handler, and the
//     message it becomes.
//   - partition.go: [Partition], the in-order offset marks and per-handler
//     slots of one partition's reader (package internal/inorder).
//   - redeliver_test.go: the tests of both.
package redeliver
