package delayedretry_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/delayedretry"
)

func TestPolicyDelay(t *testing.T) {
	tests := []struct {
		name   string
		policy delayedretry.Policy
		want   []time.Duration
	}{
		{"exponential", delayedretry.Policy{Attempts: 5, BaseDelay: 100 * time.Millisecond, Backoff: delayedretry.BackoffExponential},
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond}},
		{"exponential is the default", delayedretry.Policy{Attempts: 3, BaseDelay: time.Second},
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second}},
		{"linear", delayedretry.Policy{Attempts: 4, BaseDelay: 300 * time.Millisecond, Backoff: delayedretry.BackoffLinear},
			[]time.Duration{300 * time.Millisecond, 600 * time.Millisecond, 900 * time.Millisecond, 1200 * time.Millisecond}},
		{"capped", delayedretry.Policy{Attempts: 4, BaseDelay: time.Second, MaxDelay: 3 * time.Second},
			[]time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}},
		{"no truncation of odd bases", delayedretry.Policy{Attempts: 3, BaseDelay: 333 * time.Microsecond, Backoff: delayedretry.BackoffLinear},
			[]time.Duration{333 * time.Microsecond, 666 * time.Microsecond, 999 * time.Microsecond}},
		{"upper-case backoff", delayedretry.Policy{Attempts: 2, BaseDelay: time.Second, Backoff: "LINEAR"},
			[]time.Duration{time.Second, 2 * time.Second}},
		{"disabled has no delays", delayedretry.Policy{Disabled: true, Attempts: 3, BaseDelay: time.Second}, []time.Duration{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, tt.policy.Validate())
			assert.Equal(t, tt.want, append([]time.Duration{}, tt.policy.Delays()...))
		})
	}
}

func TestPolicyDelayNeverOverflows(t *testing.T) {
	p := delayedretry.Policy{Attempts: 1000, BaseDelay: time.Hour}
	assert.Equal(t, time.Duration(math.MaxInt64), p.Delay(1000))
	assert.Positive(t, p.Delay(64))
	p.MaxDelay = 10 * time.Minute
	assert.Equal(t, 10*time.Minute, p.Delay(1000))
	assert.Equal(t, time.Hour/1, delayedretry.Policy{BaseDelay: time.Hour}.Delay(0), "attempt < 1 counts as the first")
}

func TestPolicyJitterOnlyDelays(t *testing.T) {
	p := delayedretry.Policy{Attempts: 3, BaseDelay: 100 * time.Millisecond, MaxDelay: 350 * time.Millisecond, Jitter: 0.5}
	seenAbove := false
	for range 1000 {
		for k := 1; k <= 3; k++ {
			d := p.JitteredDelay(k)
			assert.GreaterOrEqual(t, d, p.Delay(k), "jitter never shortens a delay")
			assert.LessOrEqual(t, d, 350*time.Millisecond, "jitter respects the cap")
			assert.LessOrEqual(t, d, time.Duration(float64(p.Delay(k))*1.5))
			seenAbove = seenAbove || d > p.Delay(k)
		}
	}
	assert.True(t, seenAbove, "jitter adds something")
	p.Jitter = 0
	assert.Equal(t, p.Delay(2), p.JitteredDelay(2))
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name   string
		policy delayedretry.Policy
		field  string
	}{
		{"negative attempts", delayedretry.Policy{Attempts: -1, BaseDelay: time.Second}, "Attempts"},
		{"no base delay", delayedretry.Policy{Attempts: 1}, "BaseDelay"},
		{"negative max", delayedretry.Policy{Attempts: 1, BaseDelay: time.Second, MaxDelay: -1}, "MaxDelay"},
		{"base above max", delayedretry.Policy{Attempts: 1, BaseDelay: time.Minute, MaxDelay: time.Second}, "exceeds MaxDelay"},
		{"unknown backoff", delayedretry.Policy{Attempts: 1, BaseDelay: time.Second, Backoff: "fibonacci"}, `Backoff = "fibonacci"`},
		{"jitter above 1", delayedretry.Policy{Attempts: 1, BaseDelay: time.Second, Jitter: 1.5}, "Jitter"},
		{"jitter NaN", delayedretry.Policy{Attempts: 1, BaseDelay: time.Second, Jitter: math.NaN()}, "Jitter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Validate()
			require.ErrorIs(t, err, delayedretry.ErrInvalidPolicy)
			assert.Contains(t, err.Error(), tt.field)
		})
	}
}

func TestLaneTopic(t *testing.T) {
	assert.Equal(t, "svc.retry.300ms", delayedretry.LaneTopic("svc.retry", 300*time.Millisecond))
	assert.Equal(t, "svc.retry.5s", delayedretry.LaneTopic("svc.retry", 5*time.Second))
	assert.Equal(t, "svc.retry.1500ms", delayedretry.LaneTopic("svc.retry", 1500*time.Millisecond))
	assert.Equal(t, "svc.retry.3600s", delayedretry.LaneTopic("svc.retry", time.Hour))
}
