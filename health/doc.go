// Package health serves the /kafka monitoring and admin endpoints of a
// kafkaevents Stack on an Echo v4 router.
//
// Register mounts the endpoints under Config.Prefix (default "/kafka") on an
// *echo.Echo or an *echo.Group:
//
//	if err := health.Register(e, health.Config{Source: stack, AdminToken: token}); err != nil {
//		return err
//	}
//
// Config.Source is a [Source]: a [Status], which the open endpoints read,
// and an [Admin], which only the admin endpoints call. *kafkaevents.Stack
// is both.
//
// Open endpoints (no authentication):
//
//	GET  {prefix}/health             component summary; 503 when the producer is not connected
//	GET  {prefix}/health/ready       readiness checks, bounded by Config.ReadTimeout; 503 when not ready
//	GET  {prefix}/health/live        liveness; always 200, touches nothing
//	HEAD on the three above          as GET, without the body
//	GET  {prefix}/metrics            retry, DLQ and handler counters and the consumer lag, as JSON
//	GET  {prefix}/metrics/prometheus the Prometheus registry of Status.Gatherer, text format or OpenMetrics
//	GET  {prefix}/handlers           the registered handlers and their retry and DLQ options
//	GET  {prefix}/dlq/status         the reprocessing runs in progress and the last result per topic
//
// Admin endpoints (they change state or show message payloads):
//
//	POST {prefix}/dlq/reprocess      start reprocessing the DLQ records of one topic; 202
//	POST {prefix}/dlq/stop           stop the run of one topic, or every run
//	GET  {prefix}/dlq/messages       browse the DLQ records of one topic (encoding=base64 for binary payloads)
//	POST {prefix}/metrics/reset      zero the retry and/or DLQ counters
//	GET  {prefix}/dlq/records        DLQ records filtered by topic, reason and handler
//	GET  {prefix}/dlq/records/{partition}/{offset}            one DLQ record with its payload
//	POST {prefix}/dlq/records/{partition}/{offset}/reprocess  reprocess that one record
//	GET  {prefix}/admin/check        204 when the request passes the admin checks
//
// Every admin request writes one audit line to Config.Logger: the action,
// its target, the time, the remote address and the result, never the token.
// Unset, Config.Logger is the stack's logger (a Source that is a
// [LoggerSource]), so the audit lines have the service's log format.
//
// Unless Config.UI is false, {prefix}/ui/ serves the operator console: the
// overview, the DLQ browser and reprocessing in the browser, from files
// embedded in the binary, with a strict Content-Security-Policy. It signs in
// with the admin token, which it keeps in the tab's sessionStorage and sends
// as the Authorization header.
//
// The admin endpoints are refused with 403 unless Config.AdminToken or
// Config.AdminMiddleware is set. With a token, requests must carry
// "Authorization: Bearer <token>" (401 otherwise); the token is compared in
// constant time and never logged or printed.
//
// The JSON field names are those of the NestJS package this library replaces.
// Every error the endpoints produce, including errors returned by
// Config.AdminMiddleware, is written as {"error":"<code>","message":"<text>"}
// by the routes themselves, whatever the Echo instance's HTTPErrorHandler.
// Requests that match no route (404, 405) are left to Echo. Every answer
// carries X-Content-Type-Options: nosniff; a request body over 64 KiB
// answers 413.
//
// Serve the endpoints from a server with timeouts, so that slow and idle
// clients cannot hold it: NewServer, or SetServerDefaults on an existing
// *http.Server (e.Server for Echo's e.Start).
//
// Echo is imported only by this package, so moving to Echo v5 touches nothing
// else.
package health
