package offsets

import (
	"slices"
	"sync"

	"github.com/IBM/sarama"
)

// Assignments tells a claim that its partition was revoked by a cooperative
// rebalance as soon as the member's new assignment is known, rather than
// when sarama closes the claim's partition consumer: sarama closes it only
// once its broker consumer is done feeding the partitions it kept, which,
// with slow handlers, takes seconds.
//
// A cooperative rebalance keeps the session and bumps its generation. When
// a claim sees a new generation, Assignments asks the group coordinator for
// the member's assignment (one DescribeGroups request per member and
// generation, shared by the member's claims); a claim whose partition is not
// in it is revoked. When it cannot tell (an error, the member not listed),
// nothing is revoked: sarama's own signal still comes.
type Assignments struct {
	group    string
	describe func(group string) (map[string]map[string][]int32, error)

	mu sync.Mutex
	// byMember is the last assignment read for each member of this process
	// that asked, with the generation it was read for.
	byMember map[string]assignment
}

type assignment struct {
	gen    int32
	topics map[string][]int32
	known  bool
}

// NewAssignments returns the Assignments of group; describe returns, by
// member ID, the partitions by topic assigned to each member of a group
// (from a DescribeGroups request).
func NewAssignments(group string, describe func(group string) (map[string]map[string][]int32, error)) *Assignments {
	return &Assignments{group: group, describe: describe, byMember: map[string]assignment{}}
}

// Revoked reports whether the member of sess, at sess's current
// generation, is known not to be assigned topic/partition any more. A nil
// Assignments knows nothing.
func (a *Assignments) Revoked(sess sarama.ConsumerGroupSession, topic string, partition int32) bool {
	if a == nil {
		return false
	}
	member, gen := sess.MemberID(), sess.GenerationID()
	a.mu.Lock()
	defer a.mu.Unlock()
	got, ok := a.byMember[member]
	if !ok || got.gen != gen {
		members, err := a.describe(a.group)
		got = assignment{gen: gen}
		if err == nil {
			got.topics, got.known = members[member]
			// Members that left the group (earlier sessions of this
			// process) are forgotten.
			for m := range a.byMember {
				if _, in := members[m]; !in {
					delete(a.byMember, m)
				}
			}
		}
		a.byMember[member] = got
	}
	return got.known && !slices.Contains(got.topics[topic], partition)
}
