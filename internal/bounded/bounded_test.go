package bounded_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/internal/bounded"
)

func TestCall(t *testing.T) {
	t.Run("result", func(t *testing.T) {
		v, err := bounded.Call(t.Context(), func(context.Context) (int, error) { return 7, nil })
		require.NoError(t, err)
		assert.Equal(t, 7, v)
	})
	t.Run("error", func(t *testing.T) {
		boom := errors.New("boom")
		_, err := bounded.Call(t.Context(), func(context.Context) (int, error) { return 0, boom })
		assert.ErrorIs(t, err, boom)
	})
	t.Run("deadline before a call that ignores it", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		release := make(chan struct{})
		defer close(release)
		start := time.Now()
		_, err := bounded.Call(ctx, func(context.Context) (int, error) { <-release; return 1, nil })
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), 2*time.Second)
	})
	t.Run("panic", func(t *testing.T) {
		_, err := bounded.Call(t.Context(), func(context.Context) (int, error) { panic("bad") })
		require.Error(t, err)
		assert.Contains(t, err.Error(), "panic: bad")
	})
}
