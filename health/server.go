package health

import (
	"net/http"
	"time"
)

// The settings NewServer and SetServerDefaults give an *http.Server, so that
// slow and idle clients cannot hold its goroutines and file descriptors.
const (
	// ServerReadHeaderTimeout bounds the wait for a request's headers: a
	// client that sends half a request line is disconnected after it.
	ServerReadHeaderTimeout = 5 * time.Second
	// ServerReadTimeout bounds reading a whole request, body included.
	ServerReadTimeout = 15 * time.Second
	// ServerWriteTimeout bounds writing an answer, counted from the end of
	// the request's headers. The slowest endpoint of the package, the DLQ
	// browse, reads the DLQ for up to a few seconds.
	ServerWriteTimeout = 30 * time.Second
	// ServerIdleTimeout bounds how long a keep-alive connection waits for
	// its next request.
	ServerIdleTimeout = 60 * time.Second
	// ServerMaxHeaderBytes bounds the size of a request's headers.
	ServerMaxHeaderBytes = 64 << 10
)

// NewServer returns an *http.Server for addr and handler (an *echo.Echo,
// for example) with the settings of SetServerDefaults. Start it with
// ListenAndServe, or Serve on a listener of your own; stop it with Shutdown.
func NewServer(addr string, handler http.Handler) *http.Server {
	s := &http.Server{Addr: addr, Handler: handler, ReadHeaderTimeout: ServerReadHeaderTimeout}
	SetServerDefaults(s)
	return s
}

// SetServerDefaults sets each of the timeouts and the header size limit of
// s that is still zero (net/http's "no limit") to the value of the Server*
// constants, and leaves the others alone. For an Echo instance started
// with e.Start, call it on e.Server first.
func SetServerDefaults(s *http.Server) {
	if s.ReadHeaderTimeout == 0 {
		s.ReadHeaderTimeout = ServerReadHeaderTimeout
	}
	if s.ReadTimeout == 0 {
		s.ReadTimeout = ServerReadTimeout
	}
	if s.WriteTimeout == 0 {
		s.WriteTimeout = ServerWriteTimeout
	}
	if s.IdleTimeout == 0 {
		s.IdleTimeout = ServerIdleTimeout
	}
	if s.MaxHeaderBytes == 0 {
		s.MaxHeaderBytes = ServerMaxHeaderBytes
	}
}
