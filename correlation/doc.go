// Package correlation gives every message a correlation ID that follows it
// across services, retries and the DLQ.
//
// The ID travels in the x-correlation-id header. A consumed message keeps the
// ID it arrived with (x-correlation-id, or Watermill's correlation_id
// metadata); a record consumed without one gets an ID derived from the record
// (FromRecord: corr-{hash of topic, partition and offset}-{record time in
// unix ms}), the same on every redelivery; any other message without one gets
// a generated ID of the form corr-{random}-{unix ms}. Middleware puts the ID in the message context, where
// FromContext finds it, and stamps it on the messages a handler returns; the
// kafkaevents producer, retry and DLQ records stamp it on what they publish.
package correlation
