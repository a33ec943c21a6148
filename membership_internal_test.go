package kafkaevents

import (
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMemberInstanceID(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("t", 249)
	tests := []struct {
		name, base, member, want string
	}{
		{name: "dynamic membership", base: "", member: "orders", want: ""},
		{name: "topic", base: "orders-0", member: "order.created", want: "orders-0.order.created"},
		{name: "retry", base: "orders-0", member: "retry", want: "orders-0.retry"},
		{name: "second subscription", base: "orders-0", member: "order.created.2", want: "orders-0.order.created.2"},
		{name: "just fits", base: "b", member: strings.Repeat("t", 247), want: "b." + strings.Repeat("t", 247)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, memberInstanceID(tt.base, tt.member))
		})
	}

	t.Run("too long for Kafka", func(t *testing.T) {
		t.Parallel()
		base := strings.Repeat("b", maxInstanceIDLen)
		a := memberInstanceID(base, long)
		b := memberInstanceID(base, long[:248]+"u")
		assert.Len(t, a, maxGroupInstanceIDLen)
		assert.NotEqual(t, a, b, "topics that differ only at the end get different IDs")
		assert.Equal(t, a, memberInstanceID(base, long), "the same across restarts")
		assert.True(t, strings.HasPrefix(a, base+"."+"ttt"), a)
		cfg := sarama.NewConfig()
		cfg.Version = sarama.V2_8_0_0
		cfg.Consumer.Group.InstanceId = a
		require.NoError(t, cfg.Validate(), "sarama accepts it")
	})
}
