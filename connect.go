package kafkaevents

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
)

// startupError is the error of a wait of the start (waitingFor, such as
// "connecting to the brokers") that ended before it was done: ctx was done
// (a signal, say), which is logged, or Config.StartupTimeout ran out, and
// the error then says what the likely cause is.
func (s *Stack) startupError(ctx context.Context, waitingFor string) error {
	brokers := redactBrokers(s.cfg.Brokers)
	if err := ctx.Err(); err != nil {
		s.logger.Info("Startup interrupted", watermill.LogFields{"waiting_for": waitingFor, "brokers": brokers})
		return fmt.Errorf("kafkaevents: startup interrupted while %s (%s): %w", waitingFor, brokers, context.Cause(ctx))
	}
	return fmt.Errorf("%w: %s (%s) did not finish within %s (Config.StartupTimeout, %s): %s",
		ErrStartupTimeout, waitingFor, brokers, s.cfg.StartupTimeout, envStartupTimeout, s.likelyCause())
}

// likelyCause guesses why the brokers did not answer, from what a plain TCP
// connection to each shows and from what the config asks for.
func (s *Stack) likelyCause() string {
	var causes []string
	for _, b := range s.cfg.Brokers {
		host := b
		if i := strings.LastIndexByte(b, '@'); i >= 0 {
			host = b[i+1:]
		}
		conn, err := net.DialTimeout("tcp", host, 2*time.Second)
		if err != nil {
			causes = append(causes, fmt.Sprintf("%s: no TCP connection (%s): is the address right and the broker up?", redactBroker(b), redactIn(err.Error(), s.cfg.Brokers)))
			continue
		}
		_ = conn.Close()
		switch {
		case s.cfg.SASL.Mechanism != "" && s.cfg.TLSEnabled():
			causes = append(causes, fmt.Sprintf("%s: the TCP connection opens but the TLS and SASL handshakes got no answer: is this listener SASL_SSL?", redactBroker(b)))
		case s.cfg.SASL.Mechanism != "":
			causes = append(causes, fmt.Sprintf("%s: the TCP connection opens but the SASL handshake got no answer: is this listener SASL?", redactBroker(b)))
		case s.cfg.TLSEnabled():
			causes = append(causes, fmt.Sprintf("%s: the TCP connection opens but the TLS handshake got no answer: is this listener TLS?", redactBroker(b)))
		default:
			causes = append(causes, fmt.Sprintf("%s: the TCP connection opens but Kafka requests get no answer: is this a plaintext Kafka listener (not TLS or SASL)?", redactBroker(b)))
		}
	}
	return strings.Join(causes, "; ")
}

// connectClient opens a sarama client to the brokers, waiting at most
// Config.StartupTimeout and no longer than ctx lasts (sarama's connect takes
// no context); a client that connects after the wait ended is closed.
func (s *Stack) connectClient(ctx context.Context, what string, sc *sarama.Config) (sarama.Client, error) {
	wait, cancel := context.WithTimeout(ctx, s.cfg.StartupTimeout)
	defer cancel()
	type result struct {
		c   sarama.Client
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := sarama.NewClient(s.cfg.Brokers, sc)
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-wait.Done():
		go func() {
			if r := <-ch; r.err == nil {
				_ = r.c.Close()
			}
		}()
		return nil, s.startupError(ctx, what)
	}
}
