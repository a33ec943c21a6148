// Package keyorder keeps the order of a key's records across the retry and
// DLQ hand-offs of a handler whose retry policy asks for it
// (delayedretry.Policy.KeepKeyOrder).
//
// When a record of key K, on partition p of the handler's topic, is handed
// to a retry lane (or to the DLQ, when the policy holds dead-lettered keys),
// K is parked behind it: a head entry is written to the state topic before
// the hand-off. Every later record of K on p is set aside: written to the
// state topic, with its payload and headers, before its offset may be
// committed past, and not handled. When the head succeeds (on a retry, a
// reprocessing from the DLQ, or when an operator releases it), its entry is
// tombstoned, and the owner of p delivers the records set aside, one at a
// time in offset order, through the handler's chain; each is tombstoned once
// it was handled. A released record that fails parks K again behind itself.
//
// The state topic ({service}.parked, one partition, compacted) is the only
// state: every instance reads it from its start and follows it, and the new
// owner of a partition reads it up to its end before the partition hands out
// its first record ([Parker.OnClaim]). A SIGKILL, a restart or a rebalance
// loses nothing: what was parked is in the topic.
//
// Files: entry.go (the records of the state topic), parker.go (the state,
// its reader and the hand-offs), release.go (delivering what was set aside),
// stats.go (what the metrics and the console show).
package keyorder
