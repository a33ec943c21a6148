package kafkaevents_test

import (
	"fmt"
	"time"

	"github.com/torix/kafkaevents"
)

// A service sets in code what it never wants to change, reads the rest from
// KAFKA_* variables, fills in the defaults and validates the result. Here a
// map stands in for the process environment; a service calls FromEnv.
func ExampleConfig_FromLookup() {
	env := map[string]string{
		"KAFKA_BROKERS":          "kafka-1:9092, kafka-2:9092",
		"KAFKA_CLIENT_ID":        "orders",
		"KAFKA_SASL_MECHANISM":   "SCRAM-SHA-512",
		"KAFKA_SASL_USERNAME":    "orders",
		"KAFKA_SASL_PASSWORD":    "s3cr3t-pa55",
		"KAFKA_RETRY_ATTEMPTS":   "9", // ignored: set in code below
		"KAFKA_RETRY_BASE_DELAY": "500",
		"KAFKA_RETRY_MAX_DELAY":  "1m",
	}
	lookup := func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}

	cfg, err := kafkaevents.Config{
		Retry: kafkaevents.RetryConfig{Attempts: 5},
	}.FromLookup(lookup)
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		fmt.Println(err)
		return
	}

	fmt.Println("brokers:", cfg.Brokers)
	fmt.Println("group:", cfg.Consumer.GroupID)
	fmt.Println("tls:", cfg.TLSEnabled())
	fmt.Println("retry:", cfg.Retry.Attempts, cfg.Retry.BaseDelay, cfg.Retry.MaxDelay)
	fmt.Println("sasl:", cfg.SASL)
	// Output:
	// brokers: [kafka-1:9092 kafka-2:9092]
	// group: orders-group
	// tls: true
	// retry: 5 500ms 1m0s
	// sasl: {Mechanism:scram-sha-512 Username:orders Password:[redacted]}
}

// Printing a config, with any verb, never shows the SASL password or the
// admin token.
func ExampleConfig_String() {
	cfg := kafkaevents.Config{
		ClientID: "orders",
		Brokers:  []string{"kafka-1:9092"},
		SASL:     kafkaevents.SASLConfig{Mechanism: "plain", Username: "orders", Password: "s3cr3t-pa55"},
		Retry:    kafkaevents.RetryConfig{BaseDelay: 2 * time.Second},
		Monitoring: kafkaevents.MonitoringConfig{
			AdminToken: "t0k3n-s3cr3t",
		},
	}
	cfg.SetDefaults()

	fmt.Println(cfg.SASL)
	fmt.Printf("%#v\n", cfg.Monitoring)
	fmt.Println(cfg)
	// Output:
	// {Mechanism:plain Username:orders Password:[redacted]}
	// kafkaevents.MonitoringConfig{Enabled:kafkaevents.Bool(true), AdminToken:"[redacted]", Prefix:"/kafka", UI:kafkaevents.Bool(true), TraceURL:""}
	// {ClientID:orders Brokers:[kafka-1:9092] ServiceName:orders Version:2.8.0 LogLevel:info StartupTimeout:20s TLS:{Enabled:<nil> CAFile: CertFile: KeyFile: InsecureSkipVerify:false ServerName:} SASL:{Mechanism:plain Username:orders Password:[redacted]} Consumer:{GroupID:orders-group InstanceID: SessionTimeout:30s HeartbeatInterval:3s FetchMinBytes:1 FetchDefaultBytes:1048576 FetchMaxBytes:0 MaxWaitTime:250ms RebalanceStrategy:range RebalanceTimeout:1m0s ShutdownTimeout:30s CommitInterval:100ms Concurrency:1} Producer:{Idempotent:false MaxInFlightRequests:5 RequiredAcks:all Compression:none Linger:5ms ExactlyOnceHandoffs:true} Subscriptions:{Topics:[] FromBeginning:false} Retry:{Enabled:true Attempts:3 BaseDelay:2s MaxDelay:30s Backoff:exponential Jitter:0 TopicMode:lanes Partitions:3 ReplicationFactor:1 Retention:168h0m0s Segment:1h0m0s KeepKeyOrder:false DeadLetteredKey:hold KeyOrderLimit:10000} DLQ:{Enabled:true Partitions:3 ReplicationFactor:1 Retention:336h0m0s MaxReprocess:5} Monitoring:{Enabled:true AdminToken:[redacted] Prefix:/kafka UI:true TraceURL:}}
}

// Validate reports every problem at once, each with the field, the bad value,
// what is allowed and the variable that sets the field.
func ExampleConfig_Validate() {
	cfg := kafkaevents.Config{
		Brokers: []string{"kafka-1"},
		Retry:   kafkaevents.RetryConfig{Backoff: "fibonacci", Jitter: 1.5},
	}
	cfg.SetDefaults()
	fmt.Println(cfg.Validate())
	// Output:
	// kafkaevents: invalid config
	// Brokers[0] = "kafka-1": want host:port, such as "localhost:9092" (address kafka-1: missing port in address) (env KAFKA_BROKERS)
	// Retry.Backoff = "fibonacci": want one of exponential, linear (env KAFKA_RETRY_BACKOFF)
	// Retry.Jitter = 1.5: want a fraction from 0 to 1 (env KAFKA_RETRY_JITTER)
}
