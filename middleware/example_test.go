package middleware_test

import (
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/middleware"
	"github.com/torix/kafkaevents/wire"
)

func ExampleRecoverPanics() {
	handler := middleware.RecoverPanics(func(*message.Message) ([]*message.Message, error) {
		panic("inventory cache not initialised")
	})
	_, err := handler(message.NewMessage("1", nil))
	var pe *wire.PanicError
	fmt.Println(errors.As(err, &pe), wire.IsRetryable(err))
	fmt.Println(err)
	// Output:
	// true true
	// panic: inventory cache not initialised
}
