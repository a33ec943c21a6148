package health

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// Error codes of the {"error":code,"message":text} bodies.
const (
	codeBadRequest       = "bad_request"
	codeInvalidBody      = "invalid_body"
	codeBodyTooLarge     = "body_too_large"
	codeInvalidOptions   = "invalid_options"
	codeInvalidQuery     = "invalid_query"
	codeUnknownTopic     = "unknown_topic"
	codeUnknownComponent = "unknown_component"
	codeAlreadyRunning   = "already_running"
	codeDLQDisabled      = "dlq_disabled"
	codeAdminDisabled    = "admin_disabled"
	codeUnauthorized     = "unauthorized"
	codeForbidden        = "forbidden"
	codeUnavailable      = "unavailable"
	codeTimeout          = "timeout"
	codeInternal         = "internal_error"
	codeNotFound         = "not_found"
)

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// apiError is an error a handler returns to have it written by respond.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func newError(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// respond is the outermost middleware of every route: it writes any error
// returned further in (by a handler, the admin check or
// Config.AdminMiddleware) as {"error","message"} JSON, so the answer does not
// depend on the Echo instance's HTTPErrorHandler. Errors other than apiError
// and *echo.HTTPError become a 500 whose message does not reveal them.
//
// It also sets X-Content-Type-Options: nosniff on every answer, so that a
// browser never reads a JSON answer (which may quote a payload) as HTML.
func respond(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderXContentTypeOptions, "nosniff")
		err := next(c)
		if err == nil || c.Response().Committed {
			return nil
		}
		var ae *apiError
		var he *echo.HTTPError
		switch {
		case errors.As(err, &ae):
		case errors.As(err, &he):
			ae = fromHTTPError(he)
		default:
			ae = newError(http.StatusInternalServerError, codeInternal, "internal server error")
		}
		return c.JSON(ae.status, errorBody{Error: ae.code, Message: ae.message})
	}
}

func fromHTTPError(he *echo.HTTPError) *apiError {
	status := he.Code
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	msg := http.StatusText(status)
	if m, ok := he.Message.(string); ok && m != "" {
		msg = m
	} else if he.Message != nil && status < 500 {
		msg = fmt.Sprint(he.Message)
	}
	return &apiError{status: status, code: codeFor(status), message: msg}
}

// codeFor names a status: "unauthorized" for 401, "too_many_requests" for
// 429 and so on.
func codeFor(status int) string {
	switch status {
	case http.StatusBadRequest:
		return codeBadRequest
	case http.StatusForbidden:
		return codeForbidden
	case http.StatusInternalServerError:
		return codeInternal
	}
	text := http.StatusText(status)
	if text == "" {
		return fmt.Sprintf("http_%d", status)
	}
	return strings.ReplaceAll(strings.ToLower(strings.ReplaceAll(text, "-", " ")), " ", "_")
}
