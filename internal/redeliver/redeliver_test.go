package redeliver_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/correlation"
	"github.com/torix/kafkaevents/internal/inorder"
	"github.com/torix/kafkaevents/internal/redeliver"
	"github.com/torix/kafkaevents/wire"
)

type parentKey struct{}

func TestRecordMessage(t *testing.T) {
	d := wire.Delivery{HandlerID: "Orders.create", Topic: "orders", Key: []byte("k"), RetryCount: 2, Source: wire.SourceRetry}
	parent := context.WithValue(t.Context(), parentKey{}, "parent")

	tests := []struct {
		name            string
		md              message.Metadata
		wantCorrelation string
	}{
		{name: "correlation ID in the metadata", md: message.Metadata{wire.HeaderCorrelationID: "corr-1", "x": "y"}, wantCorrelation: "corr-1"},
		{name: "no correlation ID", md: message.Metadata{"x": "y"}},
		{name: "nil metadata", md: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := redeliver.Record{UUID: "uuid-1", Payload: []byte("payload"), Metadata: tt.md, Delivery: d}.Message(parent)
			assert.Equal(t, "uuid-1", msg.UUID)
			assert.Equal(t, "payload", string(msg.Payload))
			require.NotNil(t, msg.Metadata, "a message always has metadata to set")
			if tt.md != nil {
				msg.Metadata.Set("added", "1")
				assert.Equal(t, "1", tt.md.Get("added"), "the metadata is the record's, not a copy")
			}
			assert.Equal(t, d, wire.DeliveryOf(msg))
			assert.Equal(t, tt.wantCorrelation, correlation.FromContext(msg.Context()))
			assert.Equal(t, "parent", msg.Context().Value(parentKey{}), "the context derives from parent")
		})
	}
}

func TestPartitionMarksInOrder(t *testing.T) {
	var mu sync.Mutex
	var marks []int64
	p := redeliver.NewPartition(func(next int64) {
		mu.Lock()
		marks = append(marks, next)
		mu.Unlock()
	}, nil, nil)
	var done []func()
	for off := int64(5); off < 8; off++ {
		d, err := p.Admit(t.Context(), off)
		require.NoError(t, err)
		done = append(done, d)
	}
	done[1]()
	done[2]()
	assert.Empty(t, marks, "offset 5 is not done")
	done[0]()
	assert.Equal(t, []int64{8}, marks)
}

func TestPartitionAdmitHoldsAtTheWindow(t *testing.T) {
	p := redeliver.NewPartition(func(int64) {}, nil, nil)
	first, err := p.Admit(t.Context(), 0)
	require.NoError(t, err)
	for off := int64(1); off < inorder.Window; off++ {
		d, err := p.Admit(t.Context(), off)
		require.NoError(t, err)
		d()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = p.Admit(ctx, inorder.Window)
	require.ErrorIs(t, err, context.DeadlineExceeded, "a record that does not finish holds the reading after inorder.Window more")

	first()
	_, err = p.Admit(t.Context(), inorder.Window)
	require.NoError(t, err, "room again once the front is done")
}

func TestPartitionRunInLine(t *testing.T) {
	var failed atomic.Int32
	p := redeliver.NewPartition(func(int64) {}, func(string) int { return 1 }, func(error) { failed.Add(1) })
	boom := errors.New("boom")
	ran := false
	err := p.Run(t.Context(), "h", func() error { ran = true; return boom })
	require.ErrorIs(t, err, boom, "a handler of one record at a time runs in line and its error is Run's")
	assert.True(t, ran)
	assert.Zero(t, failed.Load())

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = p.Run(ctx, "h", func() error { t.Error("ran after ctx ended"); return nil })
	require.ErrorIs(t, err, context.Canceled)
}

func TestPartitionRunBesideTheReader(t *testing.T) {
	errs := make(chan error, 4)
	p := redeliver.NewPartition(func(int64) {}, func(id string) int {
		if id == "wide" {
			return 2
		}
		return 1
	}, func(err error) { errs <- err })

	release := make(chan struct{})
	var running atomic.Int32
	boom := errors.New("boom")
	for range 2 {
		err := p.Run(t.Context(), "wide", func() error {
			running.Add(1)
			<-release
			return boom
		})
		require.NoError(t, err, "Run returns at once while the delivery runs beside the reader")
	}
	require.Eventually(t, func() bool { return running.Load() == 2 }, 5*time.Second, time.Millisecond)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := p.Run(ctx, "wide", func() error { t.Error("ran without a free slot"); return nil })
	require.ErrorIs(t, err, context.DeadlineExceeded, "both slots taken: Run waits, bounded by ctx")

	waited := make(chan struct{})
	go func() { p.Wait(); close(waited) }()
	select {
	case <-waited:
		t.Fatal("Wait returned while deliveries run")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after the deliveries ended")
	}
	require.Len(t, errs, 2)
	assert.ErrorIs(t, <-errs, boom, "the error of a delivery beside the reader goes to failed")
}
