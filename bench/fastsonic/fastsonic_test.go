package fastsonic

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

func TestHandler(t *testing.T) {
	f := func(opts Options, method, path, body string, code int, answer string) {
		t.Helper()
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI(path)
		ctx.Request.SetBodyString(body)
		New(opts).Handler()(&ctx)
		require.Equal(t, code, ctx.Response.StatusCode())
		require.Equal(t, answer, string(ctx.Response.Body()))
	}
	const ok, bad = `{"status":"ok"}`, `{"status":"error","error":"invalid JSON"}`
	batch := `{"events":[{"type":"HEARTBEAT","source":"BalatroMCP","event_id":"a","timestamp":1.5,"payload":{"x":[1,2]}}]}`
	f(Options{}, "POST", "/api/v1/events/batch", batch, 200, ok)
	f(Options{}, "POST", "/api/v1/events", `{"type":"HEARTBEAT","payload":{}}`, 200, ok)
	f(Options{}, "POST", "/api/v1/events/batch", `{"events":[{"payload":nan}]}`, 200, bad)
	f(Options{}, "POST", "/api/v1/events/batch", `{"events":`, 200, bad)
	f(Options{}, "POST", "/elsewhere", batch, 404, `{"status":"error","error":"not found"}`)
	f(Options{}, "GET", "/api/v1/events/batch", "", 404, `{"status":"error","error":"not found"}`)
	f(Options{Discard: true}, "POST", "/api/v1/events/batch", `{"events":`, 200, ok)
}
