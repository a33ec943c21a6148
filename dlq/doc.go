// Package dlq is the dead-letter queue: failed messages that will not be
// retried go to the topic {service}.dlq with headers that say where they came
// from and why, and operators reprocess them per original topic.
//
// Queue.Middleware is the poison-queue middleware; place it outside the retry
// middleware. Every error that escapes (retries exhausted, permanent,
// undecodable, retry disabled) becomes a DLQ record, and the original message
// is acknowledged only after the broker acknowledged that record.
//
// Reprocessor replays the DLQ records of one original topic to the handler
// named in each record, through the normal middleware chain and the path the
// retry consumer takes too (internal/redeliver). Each topic's run uses its
// own consumer group, {service}.dlq.reprocess.{topic}, so a later run resumes
// where the previous one committed.
//
// Browser reads the DLQ without changing it: Browse lists the records of a
// topic, Search those that match a Query, Detail reads one in full. It
// commits nothing.
//
// Files:
//   - queue.go: Queue: the DLQ middleware and Store, which writes the DLQ
//     record of a failed message with its headers.
//   - browse.go: Browser, its Browse and Search, and the records they list.
//   - detail.go: Browser.Detail, one DLQ record in full.
//   - reprocess.go: Reprocessor, its runs (ReprocessOptions, Progress,
//     Status) and what a run does from start to end.
//   - reprocess_partition.go: how a run reads its partitions: where each
//     starts and ends, how many are read at once, and the reader that hands
//     their records back.
//   - reprocess_deliver.go: what becomes of one DLQ record in a run
//     (skipped, parked, or delivered to its handler, with the metadata it is
//     reprocessed with).
//   - reprocess_record.go: ReprocessRecord, which reprocesses one record
//     outside a run, and its RecordResult.
//   - commits.go: the offsets of the reprocess groups, read and committed in
//     batches.
//   - scan.go: reading a partition between two offsets.
//   - metrics.go: the DLQ counters, as Stats and Prometheus collectors.
//
// Tests: queue_test.go, browse_test.go and metrics_test.go, and the
// runnable examples in example_test.go; reprocess_test.go covers where a
// run starts when its committed offset lies outside the log; the rest of
// reprocessing runs and ReprocessRecord are tested through the Stack in the
// root package.
package dlq
