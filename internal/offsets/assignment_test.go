package offsets

import (
	"errors"
	"testing"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
)

// genSession is a sarama.ConsumerGroupSession with a member ID and a
// generation.
type genSession struct {
	sarama.ConsumerGroupSession
	member string
	gen    int32
}

func (s *genSession) MemberID() string    { return s.member }
func (s *genSession) GenerationID() int32 { return s.gen }

// TestAssignmentsTellARevokedPartition: a partition left out of the
// member's assignment is revoked; the coordinator is asked once per member
// and generation, members of one process do not make each other ask again,
// and an error or an unknown member revokes nothing.
func TestAssignmentsTellARevokedPartition(t *testing.T) {
	asked := 0
	var fail error
	members := map[string]map[string][]int32{
		"a": {"orders": {0, 1}},
		"b": {"payments": {0}},
	}
	as := NewAssignments("g", func(group string) (map[string]map[string][]int32, error) {
		assert.Equal(t, "g", group)
		asked++
		return members, fail
	})
	a := &genSession{member: "a", gen: 2}
	b := &genSession{member: "b", gen: 7}
	assert.False(t, as.Revoked(a, "orders", 1))
	assert.True(t, as.Revoked(a, "orders", 2), "not in the assignment")
	assert.False(t, as.Revoked(b, "payments", 0))
	assert.False(t, as.Revoked(a, "orders", 0))
	assert.Equal(t, 2, asked, "once per member and generation")

	members = map[string]map[string][]int32{"a": {"orders": {0}}, "b": {"payments": {0}}}
	a.gen = 3
	assert.True(t, as.Revoked(a, "orders", 1), "a new generation is read again")
	assert.Equal(t, 3, asked)

	a.gen, fail = 4, errors.New("coordinator unavailable")
	assert.False(t, as.Revoked(a, "orders", 1), "an error revokes nothing")
	assert.False(t, as.Revoked(&genSession{member: "gone", gen: 1}, "orders", 0), "an unknown member revokes nothing")
	assert.False(t, (*Assignments)(nil).Revoked(a, "orders", 1), "a nil Assignments knows nothing")
}
