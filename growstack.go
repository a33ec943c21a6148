package kafkaevents

// growStack makes sure the calling goroutine has room for a 3 KiB frame: a
// goroutine that starts with a 2 or 4 KiB stack grows to 8 KiB in it. It
// does nothing else (an assembly function with a 3 KiB frame and no body:
// nothing to zero).
//
// Watermill runs each message in a new goroutine, which starts small (2 KiB
// unless the runtime saw larger stacks on average) and grows by copying all
// its frames and adjusting every pointer into them, at a cost that rises
// with the number of frames. The router and the stack's middlewares use
// about 1 KiB of it, so nearly any handler (decoding JSON, logging, a
// database call) grows it once or twice, deep in the chain. Growing it at
// the entry of the chain, where it holds three frames, costs less: on real
// Kafka the CPU per message of figure 1's JSON-decoding handler fell from
// 49 to 37 µs (BENCHMARKS.md).
func growStack()
