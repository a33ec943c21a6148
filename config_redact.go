package kafkaevents

import (
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// redacted replaces the value of a secret field whenever a config is printed
// or logged. An empty secret is shown empty, so one can still tell that it is
// unset.
const redacted = "[redacted]"

// isSecretField reports whether a string field of the config types holds a
// secret, judging by its name, so a secret field added later is hidden too.
func isSecretField(name string) bool {
	for _, s := range []string{"Password", "Token", "Secret", "KeyFile"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// String formats c like %+v does, with the pointers dereferenced and the
// values of SASL.Password, Monitoring.AdminToken and TLS.KeyFile replaced by
// "[redacted]" when they are set.
func (c Config) String() string { return printRedacted(c, false) }

// GoString formats c as a Go composite literal, like %#v does, with the
// secrets redacted as in [Config.String].
func (c Config) GoString() string { return printRedacted(c, true) }

// Format implements fmt.Formatter so that no verb, not even %d or %x, can
// print the secrets: %#v prints [Config.GoString] and every other verb
// formats [Config.String].
func (c Config) Format(f fmt.State, verb rune) { formatRedacted(f, verb, c) }

// LogValue implements slog.LogValuer: c is logged as a group with
// snake_case keys and the secrets redacted as in [Config.String].
func (c Config) LogValue() slog.Value { return logValueOf(reflect.ValueOf(c)) }

// String formats s like %+v does, with Password replaced by "[redacted]"
// when it is set.
func (s SASLConfig) String() string { return printRedacted(s, false) }

// GoString formats s as a Go composite literal with Password redacted.
func (s SASLConfig) GoString() string { return printRedacted(s, true) }

// Format implements fmt.Formatter so that no verb prints Password.
func (s SASLConfig) Format(f fmt.State, verb rune) { formatRedacted(f, verb, s) }

// LogValue implements slog.LogValuer with Password redacted.
func (s SASLConfig) LogValue() slog.Value { return logValueOf(reflect.ValueOf(s)) }

// String formats m like %+v does, with AdminToken replaced by "[redacted]"
// when it is set.
func (m MonitoringConfig) String() string { return printRedacted(m, false) }

// GoString formats m as a Go composite literal with AdminToken redacted.
func (m MonitoringConfig) GoString() string { return printRedacted(m, true) }

// Format implements fmt.Formatter so that no verb prints AdminToken.
func (m MonitoringConfig) Format(f fmt.State, verb rune) { formatRedacted(f, verb, m) }

// LogValue implements slog.LogValuer with AdminToken redacted.
func (m MonitoringConfig) LogValue() slog.Value { return logValueOf(reflect.ValueOf(m)) }

// String formats t like %+v does, with KeyFile replaced by "[redacted]"
// when it is set: the path of a private key tells where to look for it.
func (t TLSConfig) String() string { return printRedacted(t, false) }

// GoString formats t as a Go composite literal with KeyFile redacted.
func (t TLSConfig) GoString() string { return printRedacted(t, true) }

// Format implements fmt.Formatter so that no verb prints KeyFile.
func (t TLSConfig) Format(f fmt.State, verb rune) { formatRedacted(f, verb, t) }

// LogValue implements slog.LogValuer with KeyFile redacted.
func (t TLSConfig) LogValue() slog.Value { return logValueOf(reflect.ValueOf(t)) }

func formatRedacted(f fmt.State, verb rune, v any) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, printRedacted(v, true))
		return
	}
	_, _ = fmt.Fprintf(f, fmt.FormatString(f, verb), printRedacted(v, false))
}

var durationType = reflect.TypeFor[time.Duration]()

// printRedacted prints one of the config structs, in Go syntax when goSyntax.
func printRedacted(v any, goSyntax bool) string {
	var b strings.Builder
	writeRedacted(&b, reflect.ValueOf(v), goSyntax)
	return b.String()
}

func writeRedacted(b *strings.Builder, v reflect.Value, goSyntax bool) {
	switch {
	case v.Type() == durationType && !goSyntax:
		b.WriteString(time.Duration(v.Int()).String())
	case v.Kind() == reflect.Struct:
		sep := " "
		if goSyntax {
			b.WriteString(v.Type().String())
			sep = ", "
		}
		b.WriteByte('{')
		for i := range v.NumField() {
			if i > 0 {
				b.WriteString(sep)
			}
			field := v.Type().Field(i)
			b.WriteString(field.Name)
			b.WriteByte(':')
			fv := v.Field(i)
			if fv.Kind() == reflect.String && isSecretField(field.Name) && fv.String() != "" {
				if goSyntax {
					b.WriteString(strconv.Quote(redacted))
				} else {
					b.WriteString(redacted)
				}
				continue
			}
			if field.Name == "Brokers" {
				fv = reflect.ValueOf(redactedBrokerList(fv))
			}
			writeRedacted(b, fv, goSyntax)
		}
		b.WriteByte('}')
	case v.Kind() == reflect.Pointer:
		switch {
		case v.IsNil() && goSyntax:
			b.WriteString("nil")
		case v.IsNil():
			b.WriteString("<nil>")
		case goSyntax && v.Elem().Kind() == reflect.Bool:
			fmt.Fprintf(b, "kafkaevents.Bool(%t)", v.Elem().Bool())
		default:
			writeRedacted(b, v.Elem(), goSyntax)
		}
	case goSyntax:
		fmt.Fprintf(b, "%#v", v.Interface())
	default:
		fmt.Fprintf(b, "%v", v.Interface())
	}
}

// logValueOf turns one of the config structs into a slog group.
func logValueOf(v reflect.Value) slog.Value {
	attrs := make([]slog.Attr, 0, v.NumField())
	for i := range v.NumField() {
		field := v.Type().Field(i)
		key := snakeCase(field.Name)
		fv := v.Field(i)
		switch {
		case fv.Kind() == reflect.String && isSecretField(field.Name) && fv.String() != "":
			attrs = append(attrs, slog.String(key, redacted))
		case field.Name == "Brokers":
			attrs = append(attrs, slog.Any(key, redactedBrokerList(fv)))
		case fv.Kind() == reflect.Struct:
			attrs = append(attrs, slog.Attr{Key: key, Value: logValueOf(fv)})
		case fv.Kind() == reflect.Pointer && fv.IsNil():
			attrs = append(attrs, slog.Any(key, nil))
		case fv.Kind() == reflect.Pointer:
			attrs = append(attrs, slog.Any(key, fv.Elem().Interface()))
		default:
			attrs = append(attrs, slog.Any(key, fv.Interface()))
		}
	}
	return slog.GroupValue(attrs...)
}

// snakeCase turns a Go field name into a snake_case log key, keeping
// initialisms together: "CAFile" gives "ca_file" and "ClientID" "client_id".
func snakeCase(s string) string {
	var b strings.Builder
	for i, r := range s {
		upper := r >= 'A' && r <= 'Z'
		if upper && i > 0 {
			prev := rune(s[i-1])
			nextLower := i+1 < len(s) && s[i+1] >= 'a' && s[i+1] <= 'z'
			if (prev >= 'a' && prev <= 'z') || (prev >= '0' && prev <= '9') || nextLower {
				b.WriteByte('_')
			}
		}
		if upper {
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// redactBroker returns a broker address with any user information (what
// comes before the last '@', as in "user:password@host:9092") replaced by
// "[redacted]", for errors and logs.
func redactBroker(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return redacted + addr[i:]
	}
	return addr
}

// redactBrokers applies redactBroker to each address and joins them with
// commas.
func redactBrokers(addrs []string) string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = redactBroker(a)
	}
	return strings.Join(out, ",")
}

// redactIn replaces every broker address of addrs that holds user
// information in s with its redacted form.
func redactIn(s string, addrs []string) string {
	for _, a := range addrs {
		if r := redactBroker(a); r != a {
			s = strings.ReplaceAll(s, a, r)
			// The user information alone may appear too (a URL parser
			// quoting it, say).
			if i := strings.LastIndexByte(a, '@'); i > 0 {
				s = strings.ReplaceAll(s, a[:i], redacted)
			}
		}
	}
	return s
}

// redactedBrokerList returns the []string v with redactBroker applied to
// each address (nil stays nil).
func redactedBrokerList(v reflect.Value) []string {
	in, _ := v.Interface().([]string)
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, a := range in {
		out[i] = redactBroker(a)
	}
	return out
}

// minRedacted is the length under which a secret is not searched for in a
// message: the messages never print a secret on purpose, only a value that
// holds one by mistake, and replacing every "p" would garble them.
const minRedacted = 4

// redactSecrets replaces every secret of secrets that is at least
// minRedacted bytes long in s with "[redacted]".
func redactSecrets(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= minRedacted {
			s = strings.ReplaceAll(s, sec, redacted)
		}
	}
	return s
}

// redactedError is an error whose message has the user information of the
// broker addresses redacted; Unwrap still reaches the original.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactErrs applies redactErr to each error of errs, in place.
func (c Config) redactErrs(errs []error) []error {
	for i, err := range errs {
		errs[i] = c.redactErr(err)
	}
	return errs
}

// redactErr returns err with every secret of c (the SASL password, the admin
// token, the TLS key path and the user information of the broker
// addresses) redacted in its message; errors.Is and errors.As still reach
// what err wraps.
func (c Config) redactErr(err error) error {
	if err == nil {
		return nil
	}
	msg := redactSecrets(redactIn(err.Error(), c.Brokers), c.SASL.Password, c.Monitoring.AdminToken, c.TLS.KeyFile)
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}
