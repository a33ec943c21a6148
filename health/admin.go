package health

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/dlq"
)

const (
	// maxBody bounds the request bodies of the admin endpoints.
	maxBody = 64 << 10
	// maxTimeout bounds the timeoutMs of a reprocessing run.
	maxTimeout = 24 * time.Hour
	// defaultBrowseLimit is the limit of {prefix}/dlq/messages when none is
	// given.
	defaultBrowseLimit = 50
)

const adminDisabledMessage = "admin endpoints are disabled: set KAFKA_ADMIN_TOKEN (or Config.Monitoring.AdminToken) or pass an admin middleware"

// adminChain is the middleware of the admin routes, outermost first: the
// error responder, the audit log (audit.go), then the bearer token check
// when a token is configured, then Config.AdminMiddleware; or, with neither
// configured, a refusal.
func (h *endpoints) adminChain() []echo.MiddlewareFunc {
	chain := []echo.MiddlewareFunc{respond, h.audit}
	if !h.cfg.adminEnabled() {
		return append(chain, func(echo.HandlerFunc) echo.HandlerFunc {
			return func(echo.Context) error {
				return newError(http.StatusForbidden, codeAdminDisabled, "%s", adminDisabledMessage)
			}
		})
	}
	if h.cfg.AdminToken != "" {
		chain = append(chain, bearer(h.cfg.AdminToken))
	}
	if h.cfg.AdminMiddleware != nil {
		chain = append(chain, h.cfg.AdminMiddleware)
	}
	return chain
}

// bearer requires "Authorization: Bearer <token>". Both sides are hashed
// before the constant-time comparison so that not even the token's length
// leaks through timing.
func bearer(token string) echo.MiddlewareFunc {
	want := sha256.Sum256([]byte(token))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			scheme, got, ok := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
			got = strings.TrimSpace(got)
			if !ok || !strings.EqualFold(scheme, "Bearer") || got == "" {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, "Bearer")
				return newError(http.StatusUnauthorized, codeUnauthorized, "missing bearer token: send the header Authorization: Bearer followed by the admin token")
			}
			sum := sha256.Sum256([]byte(got))
			if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer error="invalid_token"`)
				return newError(http.StatusUnauthorized, codeUnauthorized, "invalid bearer token")
			}
			return next(c)
		}
	}
}

type successBody struct {
	Success bool   `json:"success"`
	Message string `json:"message"`
}

type reprocessRequest struct {
	Topic       string `json:"topic"`
	BatchSize   *int   `json:"batchSize"`
	TimeoutMs   *int64 `json:"timeoutMs"`
	StopOnError *bool  `json:"stopOnError"`
}

// reprocess is POST {prefix}/dlq/reprocess: it starts a run in the
// background and answers 202.
func (h *endpoints) reprocess(c echo.Context) error {
	var req reprocessRequest
	if err := decodeBody(c, &req, false); err != nil {
		return err
	}
	opts, err := req.options()
	if err != nil {
		return err
	}
	if err := h.admin.StartReprocess(opts); err != nil {
		return sourceError(err)
	}
	return c.JSON(http.StatusAccepted, successBody{Success: true, Message: fmt.Sprintf("reprocessing of the DLQ records of %s started", opts.Topic)})
}

func (r reprocessRequest) options() (dlq.ReprocessOptions, error) {
	opts := dlq.ReprocessOptions{Topic: r.Topic}
	if strings.TrimSpace(r.Topic) == "" {
		return opts, newError(http.StatusBadRequest, codeInvalidOptions, "topic is required")
	}
	if r.BatchSize != nil {
		if *r.BatchSize <= 0 {
			return opts, newError(http.StatusBadRequest, codeInvalidOptions, "batchSize = %d: must be > 0", *r.BatchSize)
		}
		opts.BatchSize = *r.BatchSize
	}
	if r.TimeoutMs != nil {
		ms := *r.TimeoutMs
		if ms <= 0 || ms > maxTimeout.Milliseconds() {
			return opts, newError(http.StatusBadRequest, codeInvalidOptions, "timeoutMs = %d: must be 1..%d (24h)", ms, maxTimeout.Milliseconds())
		}
		opts.Timeout = time.Duration(ms) * time.Millisecond
	}
	if r.StopOnError != nil {
		opts.StopOnError = *r.StopOnError
	}
	return opts, nil
}

type stopRequest struct {
	Topic string `json:"topic"`
}

// stop is POST {prefix}/dlq/stop. An empty body, or an empty topic, stops
// every run.
func (h *endpoints) stop(c echo.Context) error {
	var req stopRequest
	if err := decodeBody(c, &req, true); err != nil {
		return err
	}
	n := h.admin.StopReprocess(req.Topic)
	return c.JSON(http.StatusOK, successBody{Success: true, Message: fmt.Sprintf("stopped %d run(s)", n)})
}

// messages is GET {prefix}/dlq/messages?topic=&limit=&offset=. It is an
// admin endpoint because it shows payloads.
func (h *endpoints) messages(c echo.Context) error {
	topic := c.QueryParam("topic")
	if strings.TrimSpace(topic) == "" {
		return newError(http.StatusBadRequest, codeInvalidQuery, "topic is required")
	}
	limit, err := intParam(c, "limit", defaultBrowseLimit)
	if err != nil {
		return err
	}
	if limit < 1 || limit > dlq.MaxBrowseLimit {
		return newError(http.StatusBadRequest, codeInvalidQuery, "limit = %d: must be 1..%d", limit, dlq.MaxBrowseLimit)
	}
	offset, err := intParam(c, "offset", 0)
	if err != nil {
		return err
	}
	if offset < 0 {
		return newError(http.StatusBadRequest, codeInvalidQuery, "offset = %d: must be >= 0", offset)
	}
	encoding := c.QueryParam("encoding")
	if encoding != "" && encoding != encodingText && encoding != encodingBase64 {
		return newError(http.StatusBadRequest, codeInvalidQuery, "encoding = %q: must be text or base64", encoding)
	}
	page, err := h.admin.BrowseDLQ(c.Request().Context(), topic, limit, offset)
	if err != nil {
		return sourceError(err)
	}
	page.Records = nonNil(page.Records)
	out := browsePage{Page: page, Encoding: encodingText}
	if encoding == encodingBase64 {
		// The preview holds the payload's bytes as they are; JSON would
		// replace the bytes that are not UTF-8.
		out.Encoding = encodingBase64
		for i := range out.Records {
			out.Records[i].Preview = base64.StdEncoding.EncodeToString([]byte(out.Records[i].Preview))
		}
	}
	return c.JSON(http.StatusOK, out)
}

// Encodings of the previews of {prefix}/dlq/messages.
const (
	encodingText   = "text"
	encodingBase64 = "base64"
)

// browsePage is the answer of {prefix}/dlq/messages: the page and how its
// previews are encoded.
type browsePage struct {
	dlq.Page
	Encoding string `json:"encoding"`
}

// reset is POST {prefix}/metrics/reset?component=all|retry|dlq (default all).
func (h *endpoints) reset(c echo.Context) error {
	component := c.QueryParam("component")
	if component == "" {
		component = "all"
	}
	if err := h.admin.ResetMetrics(component); err != nil {
		return sourceError(err)
	}
	return c.JSON(http.StatusOK, successBody{Success: true, Message: "metrics reset: " + component})
}

func intParam(c echo.Context, name string, def int) (int, error) {
	s := c.QueryParam(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, newError(http.StatusBadRequest, codeInvalidQuery, "%s = %q: must be an integer", name, s)
	}
	return n, nil
}

// decodeBody reads at most maxBody bytes of JSON object into v, rejecting
// unknown fields, values of the wrong type and anything after the object.
// An empty body is accepted only when emptyOK.
func decodeBody(c echo.Context, v any, emptyOK bool) error {
	if c.Request().ContentLength > maxBody {
		return newError(http.StatusRequestEntityTooLarge, codeBodyTooLarge, "request body larger than %d bytes", maxBody)
	}
	b, err := io.ReadAll(io.LimitReader(c.Request().Body, maxBody+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return newError(http.StatusRequestEntityTooLarge, codeBodyTooLarge, "request body larger than %d bytes", mbe.Limit)
		}
		return newError(http.StatusBadRequest, codeInvalidBody, "reading the request body: %v", err)
	}
	if len(b) > maxBody {
		return newError(http.StatusRequestEntityTooLarge, codeBodyTooLarge, "request body larger than %d bytes", maxBody)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		if emptyOK {
			return nil
		}
		return newError(http.StatusBadRequest, codeInvalidBody, "request body is empty: want a JSON object")
	}
	if b[0] != '{' {
		return newError(http.StatusBadRequest, codeInvalidBody, "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return newError(http.StatusBadRequest, codeInvalidBody, "unexpected data after the JSON object")
	}
	return nil
}

func bodyError(err error) *apiError {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		return newError(http.StatusBadRequest, codeInvalidBody, "%s: want %s, got JSON %s", field, typeName(te.Type), te.Value)
	case errors.As(err, &se):
		return newError(http.StatusBadRequest, codeInvalidBody, "malformed JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return newError(http.StatusBadRequest, codeInvalidBody, "malformed JSON: unexpected end of the body")
	default:
		return newError(http.StatusBadRequest, codeInvalidBody, "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
}

func typeName(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return t.String()
	}
}

// sourceError maps the errors of the Admin methods to answers. Errors it does not
// recognise are a 500 carrying their text: the admin endpoints are
// authenticated, and operators need it.
func sourceError(err error) *apiError {
	switch {
	case errors.Is(err, kafkaevents.ErrDLQDisabled):
		return newError(http.StatusConflict, codeDLQDisabled, "%v", err)
	case errors.Is(err, dlq.ErrAlreadyRunning):
		return newError(http.StatusConflict, codeAlreadyRunning, "%v", err)
	case errors.Is(err, dlq.ErrInvalidOptions):
		return newError(http.StatusBadRequest, codeInvalidOptions, "%v", err)
	case errors.Is(err, dlq.ErrInvalidBrowse):
		return newError(http.StatusBadRequest, codeInvalidQuery, "%v", err)
	case errors.Is(err, kafkaevents.ErrUnknownTopic):
		return newError(http.StatusBadRequest, codeUnknownTopic, "%v", err)
	case errors.Is(err, kafkaevents.ErrUnknownComponent):
		return newError(http.StatusBadRequest, codeUnknownComponent, "%v", err)
	case errors.Is(err, dlq.ErrClosed), errors.Is(err, context.Canceled):
		return newError(http.StatusServiceUnavailable, codeUnavailable, "%v", err)
	case errors.Is(err, context.DeadlineExceeded):
		return newError(http.StatusGatewayTimeout, codeTimeout, "%v", err)
	default:
		return newError(http.StatusInternalServerError, codeInternal, "%v", err)
	}
}
