// Package chaos holds the reliability scenarios of kafkaevents: the reference
// service (examples/orders) is built and run as a real process against a
// broker in another process (cmd/embedded-kafka, or real Kafka), and then
// killed, restarted, scaled out, cut off from its broker and fed bad input,
// while the tests count every order: none may be lost.
//
// The package has tests only. A short form of every scenario runs in
// `go test ./...`; KAFKAEVENTS_CHAOS=1 runs the full sizes (`make chaos`);
// -short skips the scenarios that start processes. With KAFKA_LOCAL_SCRIPT
// set (make test-kafka) the scenarios run against a real Apache Kafka broker
// of their own, started with that script, and the broker-restart scenario
// runs too. KAFKAEVENTS_CHAOS_COMMIT_INTERVAL (a duration) gives the services
// of the crash scenarios that Consumer.CommitInterval. KAFKAEVENTS_CHAOS_DYNAMIC=1
// runs the static-membership restart scenario without instance IDs, for
// comparison. RELIABILITY.md lists the scenarios and their figures.
package chaos
