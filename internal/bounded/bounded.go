// Package bounded runs a blocking call with a context that bounds the wait
// for it, for the clients (sarama's admin and metadata requests, a health
// Source) that take no context themselves.
package bounded

import (
	"context"
	"fmt"
)

// Call runs f in a goroutine and returns its result, or ctx's error as soon
// as ctx ends, so that a call that ignores its context cannot hold the caller
// past the deadline. A late f finishes in the background and its result is
// dropped. A panic in f is returned as an error rather than crashing the
// process from a goroutine no recover can see.
func Call[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			if p := recover(); p != nil {
				r = result{err: fmt.Errorf("panic: %v", p)}
			}
			ch <- r
		}()
		r.v, r.err = f(ctx)
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
