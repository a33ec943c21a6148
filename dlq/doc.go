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
// named in each record, through the normal middleware chain. Each topic's run
// uses its own consumer group, {service}.dlq.reprocess.{topic}, so a later
// run resumes where the previous one committed. Browse lists the records of a
// topic without committing anything.
package dlq
