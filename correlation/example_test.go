package correlation_test

import (
	"context"
	"fmt"
	"regexp"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/correlation"
)

func ExampleNew() {
	id := correlation.New()
	fmt.Println(regexp.MustCompile(`^corr-[0-9a-z]{10}-[0-9]{13}$`).MatchString(id))
	// Output:
	// true
}

// On a router: router.AddMiddleware(correlation.Middleware), or the stack's
// Install, which adds it first. Here it wraps a handler directly.
func ExampleMiddleware() {
	var seen string
	handler := correlation.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		seen = correlation.FromContext(msg.Context())
		return []*message.Message{message.NewMessage("out-1", []byte("{}"))}, nil
	})

	in := message.NewMessage("in-1", []byte("{}"))
	in.Metadata.Set(correlation.Header, "corr-order-7")
	out, err := handler(in)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("handler context:", seen)
	fmt.Println("returned message:", out[0].Metadata.Get(correlation.Header))

	// A message without an ID gets a generated one, in the context and on
	// what the handler returns.
	out, _ = handler(message.NewMessage("in-2", []byte("{}")))
	fmt.Println("generated:", seen != "" && out[0].Metadata.Get(correlation.Header) == seen)
	// Output:
	// handler context: corr-order-7
	// returned message: corr-order-7
	// generated: true
}

// Resolve picks the ID of a message about to be published: an explicit one,
// else the one in its metadata, else the one of the message being handled
// (in ctx), else a new one.
func ExampleResolve() {
	ctx := correlation.WithID(context.Background(), "corr-from-handler")
	md := message.Metadata{correlation.Header: "corr-from-header"}

	fmt.Println(correlation.Resolve(ctx, "corr-explicit", md))
	fmt.Println(correlation.Resolve(ctx, "", md))
	fmt.Println(correlation.Resolve(ctx, "", nil))
	// Watermill's own correlation_id metadata is accepted too.
	fmt.Println(correlation.Resolve(context.Background(), "", message.Metadata{correlation.WatermillMetadataKey: "corr-watermill"}))
	// Output:
	// corr-explicit
	// corr-from-header
	// corr-from-handler
	// corr-watermill
}
