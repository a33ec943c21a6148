package health_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/health"
)

// screenshotsEnv names the directory the browser test writes the console's
// screenshots to (make screenshots sets it to docs/img).
const screenshotsEnv = "KAFKAEVENTS_SCREENSHOTS"

// hostile is the payload, key and header of a record that tries to inject
// HTML and script into the console.
const hostile = `<img src=x onerror=alert(1)>`

// findChromium returns the path of a Chromium or Chrome, or skips the test.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROME_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("browser tests skipped: no chromium found on PATH (apt-get install -y chromium, or set CHROME_PATH)")
	return ""
}

// browser starts a headless Chromium and collects the console errors and
// dialogs of its pages.
type browser struct {
	ctx     context.Context
	mu      sync.Mutex
	errs    []string
	dialogs []string
}

func (b *browser) problems() (errs, dialogs []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...), append([]string(nil), b.dialogs...)
}

func newBrowser(t *testing.T, exe string) *browser {
	t.Helper()
	// Not t.TempDir: Chromium's child processes may still be writing to
	// the profile for a moment after the browser closed.
	dataDir, err := os.MkdirTemp("", "kafkaevents-chromium-")
	require.NoError(t, err)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(dataDir),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1280, 860),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() {
		_ = chromedp.Cancel(ctx) // closes the browser and waits for it
		cancelCtx()
		cancelAlloc()
		deadline := time.Now().Add(10 * time.Second)
		for os.RemoveAll(dataDir) != nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	})
	b := &browser{ctx: ctx}
	chromedp.ListenTarget(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			b.errs = append(b.errs, "exception: "+ev.ExceptionDetails.Error())
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.APITypeError || ev.Type == runtime.APITypeWarning || ev.Type == runtime.APITypeAssert {
				b.errs = append(b.errs, fmt.Sprintf("console.%s", ev.Type))
			}
		case *log.EventEntryAdded:
			// Failed requests the test provokes (the refused sign-in) are
			// network entries; anything else at error level (a CSP
			// violation, a script error) is a fault of the page.
			if ev.Entry.Level == log.LevelError && ev.Entry.Source != log.SourceNetwork {
				b.errs = append(b.errs, fmt.Sprintf("%s: %s", ev.Entry.Source, ev.Entry.Text))
			}
		case *page.EventJavascriptDialogOpening:
			b.dialogs = append(b.dialogs, ev.Message)
			go func() { _ = chromedp.Run(ctx, page.HandleJavaScriptDialog(true)) }()
		}
	})
	// Any alert, even one swallowed by the page, is counted.
	require.NoError(t, chromedp.Run(ctx, log.Enable(), runtime.Enable(), chromedp.ActionFunc(func(ctx context.Context) error {
		_, err := page.AddScriptToEvaluateOnNewDocument(`window.__alerts = 0; window.alert = () => { window.__alerts++; };`).Do(ctx)
		return err
	})))
	return b
}

func (b *browser) run(t *testing.T, what string, actions ...chromedp.Action) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Run(ctx, actions...), what)
}

// show navigates to a view of the console (a URL with a #hash) and waits
// until the console has rendered that view, so that no element of the view
// shown before is picked up.
func show(url string) chromedp.Action {
	hash := url[strings.Index(url, "#"):]
	return chromedp.Tasks{
		chromedp.Navigate(url),
		chromedp.Poll(fmt.Sprintf(`document.getElementById('main').dataset.shown === %q`, hash), nil, chromedp.WithPollingInterval(20*time.Millisecond)),
	}
}

func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		return
	}
	var png []byte
	b.run(t, "screenshot "+name, chromedp.CaptureScreenshot(&png))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), png, 0o600))
}

func textOf(t *testing.T, b *browser, sel string) string {
	t.Helper()
	var s string
	b.run(t, "text of "+sel, chromedp.WaitVisible(sel, chromedp.ByQuery), chromedp.Text(sel, &s, chromedp.ByQuery))
	return s
}

// waitText waits until the element sel holds want.
func waitText(t *testing.T, b *browser, sel, want string) {
	t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.textContent.includes(%q); })()`, sel, want)
	b.run(t, fmt.Sprintf("wait for %q in %s", want, sel), chromedp.Poll(js, nil, chromedp.WithPollingInterval(50*time.Millisecond)))
}

func TestConsoleInBrowser(t *testing.T) {
	exe := findChromium(t)
	svc := startConsoleService(t)
	ctx := t.Context()

	// An order that fails permanently, and a hostile one, end in the DLQ.
	const order = `{"orderId":"ord-1","amount":42}`
	_, err := svc.stack.Producer().Send(ctx, kafkaevents.Message{Topic: svc.topic, Key: "ord-1", Value: []byte(order), CorrelationID: "corr-ord-1"})
	require.NoError(t, err)
	_, err = svc.stack.Producer().Send(ctx, kafkaevents.Message{
		Topic: svc.topic, Key: hostile, Value: []byte(hostile), CorrelationID: "corr-hostile",
		Headers: map[string]string{"x-note": hostile},
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return svc.stack.DLQStats().MessagesStored == 2 }, 30*time.Second, 20*time.Millisecond)
	page, err := svc.stack.SearchDLQ(ctx, dlq.Query{Topic: svc.topic, Limit: 10})
	require.NoError(t, err)
	require.Len(t, page.Records, 2)
	rec := map[string]dlq.BrowsedRecord{}
	for _, r := range page.Records {
		rec[r.Key] = r
	}
	orderRec, hostileRec := rec["ord-1"], rec[hostile]
	require.Equal(t, "permanent", orderRec.Reason)

	b := newBrowser(t, exe)
	ui := svc.url + "/kafka/ui"

	t.Run("overview before signing in", func(t *testing.T) {
		b.run(t, "open", chromedp.Navigate(ui), chromedp.WaitVisible(`body[data-ready="true"]`, chromedp.ByQuery))
		waitText(t, b, "#health-status", "healthy")
		waitText(t, b, "#overview", "permanent")
		waitText(t, b, "#overview", svc.service+".retry.100ms")
		var loc string
		b.run(t, "location", chromedp.Location(&loc))
		assert.Equal(t, ui+"/", loc, "/kafka/ui redirects to /kafka/ui/")
		b.screenshot(t, "console-overview.png")
		b.run(t, "dlq view", show(ui+"/#/dlq"))
		waitText(t, b, "#signin-needed", "Sign in with the admin token")
	})

	t.Run("a wrong token is refused", func(t *testing.T) {
		b.run(t, "sign in", chromedp.SendKeys("#token", "not-the-token", chromedp.ByQuery), chromedp.Click(`#signin button[type="submit"]`, chromedp.ByQuery))
		waitText(t, b, "#flash", "wrong token")
		var hidden bool
		b.run(t, "still signed out", chromedp.Evaluate(`document.getElementById('signin').hidden`, &hidden))
		assert.False(t, hidden)
	})

	t.Run("sign in", func(t *testing.T) {
		b.run(t, "sign in", chromedp.SendKeys("#token", uiToken, chromedp.ByQuery), chromedp.Click(`#signin button[type="submit"]`, chromedp.ByQuery),
			chromedp.WaitVisible("#signedin", chromedp.ByQuery))
		var cookie, loc, stored string
		b.run(t, "where the token is", chromedp.Evaluate(`document.cookie`, &cookie), chromedp.Location(&loc),
			chromedp.Evaluate(`sessionStorage.getItem('kafkaevents.adminToken')`, &stored))
		assert.Empty(t, cookie)
		assert.NotContains(t, loc, uiToken)
		assert.Equal(t, uiToken, stored)
	})

	t.Run("browse the DLQ and open a record", func(t *testing.T) {
		b.run(t, "dlq view", show(ui+"/#/dlq?topic="+svc.topic))
		waitText(t, b, "#dlq-count", "of 2")
		waitText(t, b, "table", "corr-ord-1")
		b.run(t, "filter by reason", chromedp.SetValue("#f-reason", "permanent", chromedp.ByQuery), chromedp.Click(`#dlq-filters button[type="submit"]`, chromedp.ByQuery),
			chromedp.Poll(`document.getElementById('main').dataset.shown.includes('reason=permanent')`, nil, chromedp.WithPollingInterval(50*time.Millisecond)))
		waitText(t, b, "#dlq-count", "of 2")
		b.screenshot(t, "console-dlq.png")
		link := fmt.Sprintf(`a[href="#/dlq/%d/%d"]`, orderRec.Partition, orderRec.Offset)
		b.run(t, "open the order's record", chromedp.Click(link, chromedp.ByQuery), chromedp.WaitVisible("#payload", chromedp.ByQuery))
		assert.Contains(t, textOf(t, b, "#payload"), `"orderId": "ord-1"`)
		assert.Equal(t, "corr-ord-1", textOf(t, b, "#record-correlation"))
		assert.Contains(t, textOf(t, b, "#record"), "payment declined")
		assert.Contains(t, textOf(t, b, "#record"), "x-dlq-reason")
		detail, err := svc.stack.DLQRecord(ctx, orderRec.Partition, orderRec.Offset)
		require.NoError(t, err)
		require.NotEmpty(t, detail.TraceID)
		var href string
		var ok bool
		b.run(t, "trace link", chromedp.AttributeValue("#trace-link", "href", &href, &ok, chromedp.ByQuery))
		assert.Equal(t, "https://trace.example/trace/"+detail.TraceID, href)
		b.screenshot(t, "console-record.png")
	})

	t.Run("hostile data stays text", func(t *testing.T) {
		b.run(t, "dlq view", show(fmt.Sprintf("%s/#/dlq/%d/%d", ui, hostileRec.Partition, hostileRec.Offset)))
		waitText(t, b, "#record-key", hostile)
		assert.Equal(t, hostile, textOf(t, b, "#payload"))
		assert.Contains(t, textOf(t, b, "#record"), hostile, "the x-note header is shown as text")
		b.run(t, "dlq list", show(ui+"/#/dlq"))
		waitText(t, b, "#dlq-count", "of 2")
		var imgs, alerts int
		b.run(t, "count", chromedp.Evaluate(`document.querySelectorAll('img').length`, &imgs), chromedp.Evaluate(`window.__alerts`, &alerts))
		assert.Zero(t, imgs, "no element was injected")
		assert.Zero(t, alerts, "no script ran")
	})

	t.Run("reprocess the topic", func(t *testing.T) {
		svc.failing.Store(false)
		b.run(t, "reprocess view", show(ui+"/#/reprocess"), chromedp.WaitVisible("#r-check", chromedp.ByQuery),
			chromedp.SetValue("#r-topic", svc.topic, chromedp.ByQuery), chromedp.Click("#r-check", chromedp.ByQuery))
		waitText(t, b, "#r-count", "will read 2 dead letters of orders")
		b.run(t, "start", chromedp.Click("#r-start", chromedp.ByQuery))
		waitText(t, b, "#run-result", "completed: 2 reprocessed, 0 failed")
		assert.Equal(t, 2, svc.handled(order), "the first delivery and the reprocessed one")
		assert.Equal(t, 2, svc.handled(hostile))

		b.run(t, "reset the DLQ counters", chromedp.SetValue("#m-component", "dlq", chromedp.ByQuery), chromedp.Click("#m-reset", chromedp.ByQuery))
		waitText(t, b, "#reset-result", "metrics reset: dlq")
		assert.Zero(t, svc.stack.DLQStats().MessagesReprocessed)
	})

	t.Run("stop a run", func(t *testing.T) {
		svc.failing.Store(true)
		const slow = `{"orderId":"ord-slow"}`
		stored := svc.stack.DLQStats().MessagesStored
		_, err := svc.stack.Producer().Send(ctx, kafkaevents.Message{Topic: svc.topic, Key: "ord-slow", Value: []byte(slow)})
		require.NoError(t, err)
		require.Eventually(t, func() bool { return svc.stack.DLQStats().MessagesStored == stored+1 }, 30*time.Second, 20*time.Millisecond)
		svc.failing.Store(false)
		release := svc.hold(slow)
		defer release()

		b.run(t, "reprocess view", show(ui+"/#/overview"), show(ui+"/#/reprocess"), chromedp.WaitVisible("#r-check", chromedp.ByQuery),
			chromedp.SetValue("#r-topic", svc.topic, chromedp.ByQuery), chromedp.Click("#r-check", chromedp.ByQuery))
		waitText(t, b, "#r-count", "will read 1 dead letter of orders")
		b.run(t, "start", chromedp.Click("#r-start", chromedp.ByQuery))
		waitText(t, b, "#run-progress", "running: 0 reprocessed")
		waitText(t, b, "#run-progress", "1 left to read")
		b.screenshot(t, "console-reprocess.png")
		b.run(t, "stop", chromedp.Click("#run-stop", chromedp.ByQuery))
		waitText(t, b, "#run-result", "stopped: 0 reprocessed")
		release()
	})

	t.Run("reprocess one record", func(t *testing.T) {
		end := topicEnd(t, svc.stack, svc.topic)
		b.run(t, "record", show(fmt.Sprintf("%s/#/dlq/%d/%d", ui, orderRec.Partition, orderRec.Offset)),
			chromedp.WaitVisible("#record-reprocess", chromedp.ByQuery), chromedp.Click("#record-reprocess", chromedp.ByQuery),
			chromedp.WaitVisible("#record-confirm-yes", chromedp.ByQuery), chromedp.Click("#record-confirm-yes", chromedp.ByQuery))
		waitText(t, b, "#record-result", "Outcome: reprocessed")
		assert.Equal(t, 3, svc.handled(order), "handed to its handler exactly once more")
		assert.Equal(t, 2, svc.handled(hostile), "the other record was not touched")
		assert.Equal(t, end, topicEnd(t, svc.stack, svc.topic), "nothing was republished to the original topic")
	})

	t.Run("audit log", func(t *testing.T) {
		lines := strings.Join(svc.audit.all(), "\n")
		assert.NotContains(t, lines, uiToken)
		assert.Contains(t, lines, `"action":"admin.sign_in"`)
		assert.Contains(t, lines, `"result":"unauthorized"`)
		assert.Contains(t, lines, `"action":"dlq.reprocess"`)
		assert.Contains(t, lines, `"action":"metrics.reset"`)
		assert.Contains(t, lines, `"action":"dlq.reprocess_record"`)
		assert.Contains(t, lines, fmt.Sprintf(`"target":"record=%d/%d"`, orderRec.Partition, orderRec.Offset))
	})

	t.Run("without an admin token, in a group", func(t *testing.T) {
		e := echo.New()
		require.NoError(t, health.Register(e.Group("/ops"), health.Config{Source: svc.stack, Logger: svc.audit}))
		srv := httptest.NewServer(e)
		defer srv.Close()
		b.run(t, "open", show(srv.URL+"/ops/kafka/ui/#/overview"), chromedp.WaitVisible("#health-status", chromedp.ByQuery))
		assert.Contains(t, textOf(t, b, "#admin-off"), "KAFKA_ADMIN_TOKEN")
		var signinHidden bool
		b.run(t, "no sign-in", chromedp.Evaluate(`document.getElementById('signin').hidden`, &signinHidden))
		assert.True(t, signinHidden, "nothing to sign in to")
		b.run(t, "dlq view", show(srv.URL+"/ops/kafka/ui/#/dlq"))
		waitText(t, b, "main", "Admin actions are off")
		var tables int
		b.run(t, "no records", chromedp.Evaluate(`document.querySelectorAll('main table').length`, &tables))
		assert.Zero(t, tables)
	})

	errs, dialogs := b.problems()
	assert.Empty(t, errs, "console errors")
	assert.Empty(t, dialogs, "dialogs")
}

// topicEnd sums the end offsets of topic's partitions.
func topicEnd(t *testing.T, s *kafkaevents.Stack, topic string) int64 {
	t.Helper()
	parts, err := s.Client().Partitions(topic)
	require.NoError(t, err)
	var sum int64
	for _, p := range parts {
		n, err := s.Client().GetOffset(topic, p, -1)
		require.NoError(t, err)
		sum += n
	}
	return sum
}

// TestParkedKeysInBrowser: with KeepKeyOrder, a record that fails for good
// holds its key; the overview shows the key-order card, the parked-keys
// view lists the key with the record set aside behind it, and releasing it
// there hands that record to its handler.
func TestParkedKeysInBrowser(t *testing.T) {
	exe := findChromium(t)
	svc := startConsoleServiceWith(t, kafkaevents.RetryConfig{BaseDelay: 100 * time.Millisecond, KeepKeyOrder: true})
	ctx := t.Context()
	for _, v := range []string{"P-1", "P-2"} {
		_, err := svc.stack.Producer().Send(ctx, kafkaevents.Message{Topic: svc.topic, Key: "cust-<b>9</b>", Value: []byte(v)})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		keys, err := svc.stack.ParkedKeys(ctx, 0)
		return err == nil && len(keys) == 1 && keys[0].SetAside == 1
	}, 30*time.Second, 20*time.Millisecond)
	svc.failing.Store(false)

	b := newBrowser(t, exe)
	ui := svc.url + "/kafka/ui"
	b.run(t, "open", chromedp.Navigate(ui), chromedp.WaitVisible(`body[data-ready="true"]`, chromedp.ByQuery))
	waitText(t, b, "#overview", "Key order")
	waitText(t, b, "#overview", svc.service+".parked")
	b.run(t, "sign in", chromedp.SendKeys("#token", uiToken, chromedp.ByQuery), chromedp.Click(`#signin button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#signedin", chromedp.ByQuery))
	b.run(t, "parked view", show(ui+"/#/parked"), chromedp.WaitVisible(".parked-release", chromedp.ByQuery))
	assert.Equal(t, "cust-<b>9</b>", textOf(t, b, ".parked-key"), "the key is shown as text")
	b.screenshot(t, "console-parked.png")
	b.run(t, "release", chromedp.Click(".parked-release", chromedp.ByQuery), chromedp.WaitVisible("#parked-release-yes", chromedp.ByQuery),
		chromedp.Click("#parked-release-yes", chromedp.ByQuery))
	waitText(t, b, "#parked-result", "released")
	require.Eventually(t, func() bool { return svc.handled("P-2") == 1 }, 30*time.Second, 20*time.Millisecond, "the record set aside reached its handler")
	assert.Equal(t, 1, svc.handled("P-1"), "the head was not handed to its handler again")
	waitText(t, b, "main", "No key is parked.")
	errs, dialogs := b.problems()
	assert.Empty(t, errs)
	assert.Empty(t, dialogs)
	lines := strings.Join(svc.audit.all(), "\n")
	assert.Contains(t, lines, `"action":"keys.release"`)
}
