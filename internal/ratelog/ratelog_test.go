package ratelog_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/torix/kafkaevents/internal/ratelog"
)

func TestLimiter(t *testing.T) {
	l := &ratelog.Limiter{Every: 10 * time.Second}
	t0 := time.Unix(1000, 0)
	ok, n := l.Allow(t0)
	assert.True(t, ok)
	assert.Zero(t, n)
	for i := range 99 {
		ok, _ = l.Allow(t0.Add(time.Duration(i) * time.Millisecond))
		assert.False(t, ok)
	}
	ok, n = l.Allow(t0.Add(10 * time.Second))
	assert.True(t, ok)
	assert.Equal(t, int64(99), n)
}
