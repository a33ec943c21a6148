// Package offsets tracks the offsets of a consumer group's claims so that a
// commit never passes a record that is not settled. It is the heart of the
// stack's at-least-once delivery.
//
// The rule: a partition's committed offset covers a record only once that
// record is settled, meaning handled, or its retry or DLQ record
// acknowledged by the broker. watermill-kafka marks a record's offset as soon
// as the record is acknowledged; a [Tracker] sits between it and the sarama
// session and lets every mark through except those a hold keeps back.
//
//   - A hold ([Tracker.Hold], [Tracker.Admit]) is taken on the offset of a
//     record that is acknowledged before it is settled: a retry record still
//     on its way to the broker, or a record handed to a handler that runs
//     beside others of its partition. While it is open, no mark of its
//     partition reaches the held offset: marks stop just below the lowest held
//     offset, and what was asked beyond it is remembered.
//   - A mark is allowed up to, not past, the lowest open hold of its claim.
//     Releasing the last hold below it marks what was asked meanwhile.
//   - A claim is revoked when sarama closes its partition consumer (a
//     cooperative rebalance takes its partition away while the session goes
//     on) or when its session ends (an eager rebalance, a stop). It then waits
//     at most [Config.ReleaseWait], or until the stop's deadline
//     ([Tracker.StopBy]) when that is earlier, for its holds to be
//     released, so that their offsets are marked before the session
//     commits. A hold still open then is lost ([wire.OffsetHold.Lost] is
//     closed, [InFlight.Ended] cancelled): its offset and every later one
//     stay uncommitted, and the next owner of the partition receives them
//     again. A record watermill-kafka hands out after the revocation is
//     refused unmarked ([Tracker.Refused], [Tracker.RefuseRevoked]), and the
//     session context watermill-kafka sees is cancelled once its record is
//     settled, so that its ConsumeClaim returns.
//
// # Completed offsets in the commit metadata
//
// One slow record holds its partition's committed offset while the records
// after it complete. So that a crash or a rebalance does not deliver those
// again, every commit carries, in its metadata, which offsets between the
// committed offset and the highest one acknowledged are still unsettled
// (see [EncodeMetadata] for the format). The next owner of the partition
// reads it when its claim starts ([Config.Committed]) and
// [Tracker.Completed] tells which records to skip. Metadata it cannot
// decode (another client's), longer than the budget, or naming an offset at
// or past the partition's high-water mark when the claim starts (this
// package never writes such metadata) is ignored, with one log line.
//
// The encoded map stays within [Config.MetadataBudget] bytes:
// [Tracker.Admit] refuses a record whose hold would pass it, and the caller
// waits until the committed offset moves; [Tracker.Hold] refuses the hold,
// and the hand-off then waits for the broker before the record is
// acknowledged.
//
// The Tracker also knows which offset of each partition was handed out last
// ([Tracker.HandOut]), so that a graceful shutdown can wait until every
// record in flight is settled ([Tracker.Settled]).
package offsets
