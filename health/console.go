package health

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/wire"
)

// Paths of the console and of the admin endpoints it uses, relative to the
// prefix.
const (
	pathUI              = "/ui"
	pathRecords         = "/dlq/records"
	pathRecord          = "/dlq/records/:partition/:offset"
	pathRecordReprocess = "/dlq/records/:partition/:offset/reprocess"
	pathAdminCheck      = "/admin/check"
)

// contentSecurityPolicy allows the console's own files and fetches to its
// own origin, nothing inline, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed ui
var uiFiles embed.FS

// console is the embedded console, built once: index.html names the other
// files with a version derived from their content, so they can be cached
// for good while index.html is revalidated on every load.
type console struct {
	index   []byte
	assets  map[string][]byte
	types   map[string]string
	version string
}

func loadConsole() (*console, error) {
	c := &console{assets: map[string][]byte{}, types: map[string]string{}}
	sum := sha256.New()
	err := fs.WalkDir(uiFiles, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := uiFiles.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "ui/")
		_, _ = sum.Write([]byte(name))
		_, _ = sum.Write(b)
		switch path.Ext(name) {
		case ".html":
			c.types[name] = "text/html; charset=utf-8"
		case ".js":
			c.types[name] = "text/javascript; charset=utf-8"
		case ".css":
			c.types[name] = "text/css; charset=utf-8"
		case ".svg":
			c.types[name] = "image/svg+xml"
		default:
			c.types[name] = "application/octet-stream"
		}
		c.assets[name] = b
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.version = hex.EncodeToString(sum.Sum(nil))[:12]
	c.index = bytes.ReplaceAll(c.assets["index.html"], []byte("{{version}}"), []byte(c.version))
	delete(c.assets, "index.html")
	return c, nil
}

// registerConsole adds the admin endpoints of the console and, unless
// Config.UI is false, the console itself.
func (h *endpoints) registerConsole(g *echo.Group, admin []echo.MiddlewareFunc) error {
	g.GET(pathRecords, h.searchRecords, admin...)
	g.GET(pathRecord, h.record, admin...)
	g.POST(pathRecordReprocess, h.reprocessRecord, admin...)
	g.GET(pathAdminCheck, h.adminCheck, admin...)
	if !h.cfg.uiEnabled() {
		return nil
	}
	c, err := loadConsole()
	if err != nil {
		return err
	}
	g.GET(pathUI, func(ec echo.Context) error {
		// The request's own path, so that a group the endpoints are
		// mounted in keeps its prefix.
		return ec.Redirect(http.StatusMovedPermanently, ec.Request().URL.Path+"/")
	}, secureHeaders)
	g.GET(pathUI+"/", func(ec echo.Context) error {
		ec.Response().Header().Set(echo.HeaderCacheControl, "no-cache")
		return ec.Blob(http.StatusOK, "text/html; charset=utf-8", c.index)
	}, secureHeaders)
	g.GET(pathUI+"/config.json", h.consoleConfig, secureHeaders, respond)
	g.GET(pathUI+"/:file", func(ec echo.Context) error {
		name := ec.Param("file")
		b, ok := c.assets[name]
		if !ok {
			return echo.NewHTTPError(http.StatusNotFound, "no such file")
		}
		if ec.QueryParam("v") == c.version {
			ec.Response().Header().Set(echo.HeaderCacheControl, "public, max-age=31536000, immutable")
		} else {
			ec.Response().Header().Set(echo.HeaderCacheControl, "no-cache")
		}
		return ec.Blob(http.StatusOK, c.types[name], b)
	}, secureHeaders, respond)
	return nil
}

// secureHeaders sets the headers of every console response.
func secureHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set(echo.HeaderXContentTypeOptions, "nosniff")
		h.Set(echo.HeaderXFrameOptions, "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		return next(c)
	}
}

// Admin modes reported to the console.
const (
	adminToken      = "token"
	adminMiddleware = "middleware"
	adminOff        = "off"
)

type consoleConfigBody struct {
	Service    string `json:"service"`
	Prefix     string `json:"prefix"`
	Admin      string `json:"admin"`
	AdminHint  string `json:"adminHint,omitempty"`
	TraceURL   string `json:"traceUrl,omitempty"`
	DLQEnabled bool   `json:"dlqEnabled"`
	DLQTopic   string `json:"dlqTopic"`
	// Reasons are the x-dlq-reason values the DLQ writes.
	Reasons []string `json:"reasons"`
}

// consoleConfig is GET {prefix}/ui/config.json: what the console needs to
// know about the server. It holds no secret.
func (h *endpoints) consoleConfig(c echo.Context) error {
	body := consoleConfigBody{
		Service: h.status.ServiceName(), Prefix: h.cfg.Prefix, Admin: adminOff, TraceURL: h.cfg.TraceURL,
		DLQEnabled: h.status.DLQEnabled(), DLQTopic: h.status.DLQTopic(),
		Reasons: []string{
			string(wire.ReasonPermanent), string(wire.ReasonRetriesExhausted), string(wire.ReasonRetryDisabled),
			string(wire.ReasonUndecodable), string(wire.ReasonUnroutable),
		},
	}
	switch {
	case h.cfg.AdminToken != "":
		body.Admin = adminToken
	case h.cfg.AdminMiddleware != nil:
		body.Admin = adminMiddleware
	default:
		body.AdminHint = adminDisabledMessage
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(http.StatusOK, body)
}

// adminCheck is GET {prefix}/admin/check: 204 when the request passes the
// admin checks. The console signs in with it.
func (h *endpoints) adminCheck(c echo.Context) error {
	return c.NoContent(http.StatusNoContent)
}

// searchRecords is GET {prefix}/dlq/records?topic=&reason=&handler=
// &pending=&limit=&offset=. Every filter is optional, except that pending
// needs a topic.
func (h *endpoints) searchRecords(c echo.Context) error {
	q := dlq.Query{Topic: c.QueryParam("topic"), Reason: c.QueryParam("reason"), HandlerID: c.QueryParam("handler")}
	var err error
	if q.Limit, err = intParam(c, "limit", defaultBrowseLimit); err != nil {
		return err
	}
	if q.Offset, err = intParam(c, "offset", 0); err != nil {
		return err
	}
	if s := c.QueryParam("pending"); s != "" {
		if q.Pending, err = strconv.ParseBool(s); err != nil {
			return newError(http.StatusBadRequest, codeInvalidQuery, "pending = %q: must be true or false", s)
		}
	}
	if q.Limit < 1 || q.Limit > dlq.MaxBrowseLimit {
		return newError(http.StatusBadRequest, codeInvalidQuery, "limit = %d: must be 1..%d", q.Limit, dlq.MaxBrowseLimit)
	}
	if q.Offset < 0 {
		return newError(http.StatusBadRequest, codeInvalidQuery, "offset = %d: must be >= 0", q.Offset)
	}
	if q.Pending && q.Topic == "" {
		return newError(http.StatusBadRequest, codeInvalidQuery, "pending needs a topic")
	}
	page, err := h.admin.SearchDLQ(c.Request().Context(), q)
	if err != nil {
		return consoleError(err)
	}
	page.Records = nonNil(page.Records)
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(http.StatusOK, page)
}

// record is GET {prefix}/dlq/records/{partition}/{offset}: one DLQ record
// with every header and its payload (base64).
func (h *endpoints) record(c echo.Context) error {
	p, o, err := recordParams(c)
	if err != nil {
		return err
	}
	d, err := h.admin.DLQRecord(c.Request().Context(), p, o)
	if err != nil {
		return consoleError(err)
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(http.StatusOK, d)
}

// reprocessRecord is POST {prefix}/dlq/records/{partition}/{offset}/reprocess:
// it hands the record to its handler and answers with the outcome once the
// handler is done, or the request's context ends.
func (h *endpoints) reprocessRecord(c echo.Context) error {
	p, o, err := recordParams(c)
	if err != nil {
		return err
	}
	res, err := h.admin.ReprocessRecord(c.Request().Context(), p, o)
	if err != nil {
		return consoleError(err)
	}
	return c.JSON(http.StatusOK, res)
}

func recordParams(c echo.Context) (int32, int64, error) {
	p, err := strconv.ParseInt(c.Param("partition"), 10, 32)
	if err != nil || p < 0 {
		return 0, 0, newError(http.StatusBadRequest, codeInvalidQuery, "partition = %q: must be an integer >= 0", c.Param("partition"))
	}
	o, err := strconv.ParseInt(c.Param("offset"), 10, 64)
	if err != nil || o < 0 {
		return 0, 0, newError(http.StatusBadRequest, codeInvalidQuery, "offset = %q: must be an integer >= 0", c.Param("offset"))
	}
	return int32(p), o, nil
}

// consoleError is sourceError plus the errors of the record endpoints.
func consoleError(err error) *apiError {
	if errors.Is(err, dlq.ErrRecordNotFound) {
		return newError(http.StatusNotFound, codeNotFound, "%v", err)
	}
	return sourceError(err)
}
