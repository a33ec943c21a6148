package health

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/internal/bounded"
)

// Paths of the key-order endpoints (Register adds them when the Source is
// a KeyOrderAdmin).
const (
	pathParked  = "/parked"
	pathRelease = "/parked/release"
)

// maxParkedLimit caps the limit of GET {prefix}/parked.
const maxParkedLimit = 1000

// KeyOrderAdmin is implemented by a Source whose handlers may keep key order
// across retries (delayedretry.Policy.KeepKeyOrder); *kafkaevents.Stack
// implements it. Register then adds two admin endpoints: GET
// {prefix}/parked lists the parked keys, POST {prefix}/parked/release
// releases one.
type KeyOrderAdmin interface {
	// ParkedKeys lists the parked keys, oldest first, at most limit.
	ParkedKeys(ctx context.Context, limit int) ([]kafkaevents.ParkedKey, error)
	// ReleaseKey releases a parked key; kafkaevents.ErrNotParked when it
	// is not parked.
	ReleaseKey(ctx context.Context, handlerID, topic string, partition int32, key string) error
}

// keyOrderSource is the optional method of a Status that reports the
// parked keys in the JSON metrics.
type keyOrderSource interface {
	KeyOrderStats() *kafkaevents.KeyOrderStats
}

// registerKeyOrder adds the key-order endpoints when the Source has them.
func (h *endpoints) registerKeyOrder(g *echo.Group, admin []echo.MiddlewareFunc) {
	ka, ok := h.cfg.Source.(KeyOrderAdmin)
	if !ok {
		return
	}
	g.GET(pathParked, func(c echo.Context) error { return h.parked(c, ka) }, admin...)
	g.POST(pathRelease, func(c echo.Context) error { return h.release(c, ka) }, admin...)
}

type parkedBody struct {
	Keys []kafkaevents.ParkedKey `json:"keys"`
}

// parked is GET {prefix}/parked?limit= (default 100, at most 1000). It is an
// admin endpoint because it shows record keys.
func (h *endpoints) parked(c echo.Context, ka KeyOrderAdmin) error {
	limit := 100
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > maxParkedLimit {
			return newError(http.StatusBadRequest, codeInvalidQuery, "limit = %q: want 1 to %d", v, maxParkedLimit)
		}
		limit = n
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), h.cfg.ReadTimeout)
	defer cancel()
	keys, err := bounded.Call(ctx, func(ctx context.Context) ([]kafkaevents.ParkedKey, error) { return ka.ParkedKeys(ctx, limit) })
	if err != nil {
		if ctx.Err() != nil {
			return newError(http.StatusGatewayTimeout, codeTimeout, "reading the parked keys did not finish within %s", h.cfg.ReadTimeout)
		}
		return newError(http.StatusServiceUnavailable, codeUnavailable, "reading the parked keys: %v", err)
	}
	return c.JSON(http.StatusOK, parkedBody{Keys: keys})
}

type releaseRequest struct {
	HandlerID string `json:"handlerId"`
	Topic     string `json:"topic"`
	Partition *int32 `json:"partition"`
	Key       string `json:"key"`
}

// release is POST {prefix}/parked/release with {handlerId, topic,
// partition, key}: the key's head is let go (it stays where it is: the DLQ
// or its retry lane) and the records set aside behind it are delivered.
func (h *endpoints) release(c echo.Context, ka KeyOrderAdmin) error {
	var req releaseRequest
	if err := decodeBody(c, &req, false); err != nil {
		return err
	}
	var missing []string
	if strings.TrimSpace(req.HandlerID) == "" {
		missing = append(missing, "handlerId")
	}
	if strings.TrimSpace(req.Topic) == "" {
		missing = append(missing, "topic")
	}
	if req.Partition == nil || *req.Partition < 0 {
		missing = append(missing, "partition (>= 0)")
	}
	if req.Key == "" {
		missing = append(missing, "key")
	}
	if len(missing) > 0 {
		return newError(http.StatusBadRequest, codeInvalidOptions, "%s required", strings.Join(missing, ", "))
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), h.cfg.ReadTimeout)
	defer cancel()
	_, err := bounded.Call(ctx, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, ka.ReleaseKey(ctx, req.HandlerID, req.Topic, *req.Partition, req.Key)
	})
	switch {
	case errors.Is(err, kafkaevents.ErrNotParked):
		return newError(http.StatusNotFound, codeNotFound, "key %q of %s/%d is not parked for handler %q", req.Key, req.Topic, *req.Partition, req.HandlerID)
	case err != nil && ctx.Err() != nil:
		return newError(http.StatusGatewayTimeout, codeTimeout, "releasing the key did not finish within %s", h.cfg.ReadTimeout)
	case err != nil:
		return newError(http.StatusServiceUnavailable, codeUnavailable, "releasing the key: %v", err)
	}
	return c.JSON(http.StatusOK, successBody{Success: true, Message: "key " + strconv.Quote(req.Key) + " released; the records set aside behind it are being delivered"})
}
