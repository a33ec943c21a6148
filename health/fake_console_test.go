package health_test

import (
	"context"
	"fmt"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/dlq"
)

func (f *fakeSource) RetryLanes(context.Context) ([]kafkaevents.RetryLane, error) {
	f.record("RetryLanes")
	return f.lanes, nil
}

// The Source methods of the console, on the fake: SearchDLQ answers with the
// fake's page, DLQRecord and ReprocessRecord know the record 0/7 only.

func (f *fakeSource) SearchDLQ(_ context.Context, q dlq.Query) (dlq.Page, error) {
	f.record("SearchDLQ")
	f.mu.Lock()
	f.searched = append(f.searched, q)
	f.mu.Unlock()
	if f.browseErr != nil {
		return dlq.Page{}, f.browseErr
	}
	p := f.page
	p.Topic, p.Limit, p.Offset = q.Topic, q.Limit, q.Offset
	return p, nil
}

func (f *fakeSource) DLQRecord(_ context.Context, partition int32, offset int64) (dlq.Detail, error) {
	f.record("DLQRecord")
	if partition != 0 || offset != 7 {
		return dlq.Detail{}, fmt.Errorf("%w: %d/%d", dlq.ErrRecordNotFound, partition, offset)
	}
	d := dlq.Detail{OriginalTopic: "orders", Payload: []byte(`{"id":1}`)}
	d.Partition, d.Offset, d.HandlerID = 0, 7, "Orders.handle"
	return d, nil
}

func (f *fakeSource) ReprocessRecord(_ context.Context, partition int32, offset int64) (dlq.RecordResult, error) {
	f.record("ReprocessRecord")
	if partition != 0 || offset != 7 {
		return dlq.RecordResult{}, fmt.Errorf("%w: %d/%d", dlq.ErrRecordNotFound, partition, offset)
	}
	return dlq.RecordResult{Partition: 0, Offset: 7, Topic: "orders", HandlerID: "Orders.handle", Outcome: dlq.OutcomeReprocessed}, nil
}
