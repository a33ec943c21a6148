package dispatch_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/dispatch"
)

func TestDeliverAckNackUnknown(t *testing.T) {
	d := dispatch.New()
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	err := d.Deliver(ctx, "nobody", message.NewMessage("0", nil))
	require.ErrorIs(t, err, dispatch.ErrUnknownHandler)

	ch, err := d.Subscribe(ctx, "h1")
	require.NoError(t, err)
	assert.True(t, d.Known("h1"))
	go func() {
		for msg := range ch {
			if string(msg.Payload) == "ok" {
				msg.Ack()
			} else {
				msg.Nack()
			}
		}
	}()
	require.NoError(t, d.Deliver(ctx, "h1", message.NewMessage("1", []byte("ok"))))
	require.ErrorIs(t, d.Deliver(ctx, "h1", message.NewMessage("2", []byte("no"))), dispatch.ErrNacked)
}

func TestDeliverWaitsForAnExpectedHandler(t *testing.T) {
	d := dispatch.New()
	defer d.Close()
	d.Expect("late")
	done := make(chan error, 1)
	go func() { done <- d.Deliver(context.Background(), "late", message.NewMessage("1", nil)) }()

	select {
	case err := <-done:
		t.Fatalf("delivered before the handler subscribed: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	ch, err := d.Subscribe(context.Background(), "late")
	require.NoError(t, err)
	(<-ch).Ack()
	require.NoError(t, <-done)
}

func TestDeliverHonoursContextAndClose(t *testing.T) {
	d := dispatch.New()
	d.Expect("h")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, d.Deliver(ctx, "h", message.NewMessage("1", nil)), context.DeadlineExceeded)

	subCtx, subCancel := context.WithCancel(context.Background())
	ch, err := d.Subscribe(subCtx, "h")
	require.NoError(t, err)
	subCancel()
	_, open := <-ch
	assert.False(t, open, "the channel closes with its context, ending the router handler")

	require.NoError(t, d.Close())
	require.NoError(t, d.Close(), "idempotent")
	require.ErrorIs(t, d.Deliver(context.Background(), "h", message.NewMessage("2", nil)), dispatch.ErrClosed)
	_, err = d.Subscribe(context.Background(), "h")
	require.ErrorIs(t, err, dispatch.ErrClosed)
}

// The companion handler subscribes to Topic(id), which reads as what it is
// in the router's logs, and receives the deliveries of id.
func TestSubscribeToTopicOfAHandler(t *testing.T) {
	d := dispatch.New()
	defer d.Close()
	assert.Equal(t, "in-process retries and reprocessing of Orders.handle", dispatch.Topic("Orders.handle"))
	ch, err := d.Subscribe(t.Context(), dispatch.Topic("Orders.handle"))
	require.NoError(t, err)
	assert.True(t, d.Known("Orders.handle"))
	go func() {
		for msg := range ch {
			msg.Ack()
		}
	}()
	require.NoError(t, d.Deliver(t.Context(), "Orders.handle", message.NewMessage("1", nil)))
}
