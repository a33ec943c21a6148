// Package docker holds the container files of the reference service: the
// Dockerfile, which builds examples/orders the way `make build` does, and
// docker-compose.yml, which runs it on Apache Kafka with Jaeger. It has no Go
// code; its tests check that the files stay consistent with the Makefile and
// the service, and validate the compose file with docker-compose (or
// `docker compose`) when one is installed.
package docker
