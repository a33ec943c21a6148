// Package txn makes the stack's hand-offs exactly once: a record's
// successor (its retry or DLQ record) and the commit of the consumed offset
// past the record go to the broker in one Kafka transaction, so that a
// crash between the two can neither lose the record nor hand it off twice.
//
// A [Committer] owns one transactional producer. Hand-offs ([Committer.Send])
// gather for a short linger; then one transaction writes them, commits the
// offsets of every consumer group member that registered a [Source]
// (TxnOffsetCommit with the member's generation and member ID, so that a
// member the group has moved on from, a zombie, is refused), and ends. The
// offsets a Source reports count the holds of the hand-offs in the
// transaction ([Hold.Settling]) as settled: the transaction commits the
// records and the offsets past their originals together, or neither.
// Between hand-offs, the offsets alone are committed the same way, every
// Config.Interval, so that a group has one writer of its offsets.
//
// When a transaction fails (the broker refuses a record, the group refused
// the offsets, a timeout), it is aborted: its records are not visible to a
// read_committed reader, no offset moved, and each hand-off's done function
// gets the error (its hold stays open; the caller may send it again). A
// producer the broker fenced (another one took its transactional ID) is
// closed and a new one initialised, as sarama cannot recover one
// (IBM/sarama#2859).
//
// Transactions leave offsets no consumer delivers: a marker after each
// transaction in every partition it wrote, and the records of an aborted one
// under read_committed. A reader that waits for a partition's end offset, or
// a lag that counts to it, asks [Deliverable] whether any record is left.
package txn
