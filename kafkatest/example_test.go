package kafkatest_test

import (
	"fmt"

	"github.com/IBM/sarama"

	"github.com/torix/kafkaevents/kafkatest"
)

// Start runs a Kafka broker in process on a random loopback port. Any Kafka
// client talks to it; in a test, kafkatest.New(t) starts one and closes it at
// the end of the test.
func ExampleStart() {
	broker, err := kafkatest.Start(kafkatest.Topics("greetings"), kafkatest.Partitions(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer broker.Close()

	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	producer, err := sarama.NewSyncProducer(broker.Addrs(), cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	partition, offset, err := producer.SendMessage(&sarama.ProducerMessage{Topic: "greetings", Value: sarama.StringEncoder("hello")})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = producer.Close()
	fmt.Println("written at", partition, offset)

	consumer, err := sarama.NewConsumer(broker.Addrs(), cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition("greetings", 0, sarama.OffsetOldest)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pc.Close()
	msg := <-pc.Messages()
	fmt.Println("read:", string(msg.Value))
	// Output:
	// written at 0 0
	// read: hello
}
