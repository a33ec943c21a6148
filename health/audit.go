package health

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/labstack/echo/v4"
)

// Audited actions, one per admin route.
var auditActions = map[string]string{
	http.MethodPost + " " + pathReprocess:       "dlq.reprocess",
	http.MethodPost + " " + pathStop:            "dlq.stop",
	http.MethodGet + " " + pathMessages:         "dlq.browse",
	http.MethodPost + " " + pathReset:           "metrics.reset",
	http.MethodGet + " " + pathRecords:          "dlq.search",
	http.MethodGet + " " + pathRecord:           "dlq.record",
	http.MethodPost + " " + pathRecordReprocess: "dlq.reprocess_record",
	http.MethodGet + " " + pathAdminCheck:       "admin.sign_in",
	http.MethodGet + " " + pathParked:           "keys.list",
	http.MethodPost + " " + pathRelease:         "keys.release",
}

// audit writes one log line per admin request once it is answered: the
// action, its target (topic, component or DLQ record), the time, the remote
// address and the result. It sits inside respond, so it sees the errors of
// the token check, Config.AdminMiddleware and the handler before they are
// written. It never reads the Authorization header.
func (h *endpoints) audit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := h.cfg.Now()
		target := auditTarget(c)
		err := next(c)

		status, result := c.Response().Status, "ok"
		var ae *apiError
		var he *echo.HTTPError
		switch {
		case errors.As(err, &ae):
			status, result = ae.status, ae.code
		case errors.As(err, &he):
			status, result = he.Code, codeFor(he.Code)
		case err != nil:
			status, result = http.StatusInternalServerError, codeInternal
		case status >= http.StatusBadRequest:
			result = codeFor(status)
		}
		path := strings.TrimPrefix(c.Path(), h.cfg.Prefix)
		action := auditActions[c.Request().Method+" "+path]
		if action == "" {
			action = c.Request().Method + " " + path
		}
		fields := watermill.LogFields{
			"action": action, "target": target, "at": start.UTC().Format(timeFormat),
			"remote_addr": remoteHost(c.Request().RemoteAddr), "result": result, "status": status,
			"duration_ms": h.cfg.Now().Sub(start).Milliseconds(),
		}
		if fwd := c.Request().Header.Get(echo.HeaderXForwardedFor); fwd != "" {
			fields["forwarded_for"] = clip(fwd, 200)
		}
		h.cfg.Logger.Info("admin action", fields)
		return err
	}
}

// auditTarget names what an admin request acts on: the DLQ record of the
// path, the topic and filters of the query, or the topic of the JSON body.
// The body is read (bounded by maxBody) and put back for the handler.
func auditTarget(c echo.Context) string {
	var parts []string
	if p, o := c.Param("partition"), c.Param("offset"); p != "" || o != "" {
		parts = append(parts, "record="+clip(p, 20)+"/"+clip(o, 30))
	}
	for _, k := range []string{"topic", "reason", "handler", "component"} {
		if v := c.QueryParam(k); v != "" {
			parts = append(parts, k+"="+clip(v, 200))
		}
	}
	req := c.Request()
	if req.Body != nil && req.Method == http.MethodPost {
		b, err := io.ReadAll(io.LimitReader(req.Body, maxBody+1))
		req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b), req.Body))
		var body struct {
			Topic     string `json:"topic"`
			HandlerID string `json:"handlerId"`
			Partition *int32 `json:"partition"`
			Key       string `json:"key"`
		}
		if err == nil && json.Unmarshal(b, &body) == nil {
			if body.Topic != "" {
				parts = append(parts, "topic="+clip(body.Topic, 200))
			}
			if body.HandlerID != "" {
				parts = append(parts, "handler="+clip(body.HandlerID, 200))
			}
			if body.Partition != nil {
				parts = append(parts, "partition="+strconv.Itoa(int(*body.Partition)))
			}
			if body.Key != "" {
				parts = append(parts, "key="+clip(body.Key, 200))
			}
		}
	}
	return strings.Join(parts, " ")
}

// clip bounds a client-supplied value in the log and quotes anything that is
// not printable, so a value cannot forge log lines.
func clip(s string, n int) string {
	if len(s) > n {
		s = s[:n] + "..."
	}
	q := fmt.Sprintf("%q", s)
	if q[1:len(q)-1] == s {
		return s
	}
	return q
}

func remoteHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
