package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jimbot/jimbus/ingest/decode"
	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

var (
	ctJSON = []byte("application/json")
	ctText = []byte("text/plain; charset=utf-8")
	// mediaForm is what curl -d sends when no Content-Type is given.
	mediaForm = []byte("application/x-www-form-urlencoded")

	hdrAllow           = []byte("Allow")
	hdrRetryAfter      = []byte("Retry-After")
	hdrWWWAuthenticate = []byte("WWW-Authenticate")
	bearer             = []byte("Bearer")
	bearerPrefix       = []byte("bearer ")
	allowPost          = []byte("POST, OPTIONS")
	allowGet           = []byte("GET, HEAD, OPTIONS")

	bodyOK             = []byte(`{"status":"ok"}`)
	bodyNotFound       = errorBody("not found")
	bodyMethod         = errorBody("method not allowed")
	bodyContentType    = errorBody("Expected Content-Type: application/json")
	bodyBatchType      = errorBody("Expected Content-Type: application/json or application/x-ndjson")
	bodyCmdContentType = errorBody("Expected Content-Type: application/json or text/plain")
	bodyStopping       = errorBody("jimbus is shutting down; retry later")
	bodyClosed         = errorBody("event pipeline closed; retry later")
	bodyBadRequest     = errorBody("malformed HTTP request")
	bodyHeaderTooLarge = errorBody("request headers too large")
	bodyTimeout        = errorBody("request not received in time")
	bodyInternal       = errorBody("internal error")
	bodyCmdFull        = errorBody("command queue full; retry later")
	bodyUnauthorized   = errorBody("authentication required: send Authorization: Bearer or X-API-Key")

	healthSuffix = []byte(`,"metadata":{"service":"jimbus","protocol_version":"1.0"}}`)

	mediaJSON     = []byte("application/json")
	mediaTextJSON = []byte("text/json")
	mediaText     = []byte("text/plain")
	mediaNDJSON   = [...][]byte{[]byte("application/x-ndjson"), []byte("application/ndjson"), []byte("application/jsonl")}
	suffixJSON    = []byte("+json")
)

// errorBody is {"status":"error","error":msg}.
func errorBody(msg string) []byte {
	b := append([]byte(`{"status":"error","error":"`), appendJSONString(nil, []byte(msg))...)
	return append(b, `"}`...)
}

// endpointOf maps a normalised path (fasthttp collapses doubled slashes) to
// its endpoint; a trailing slash is ignored.
func endpointOf(path []byte) endpoint {
	if n := len(path); n > 1 && path[n-1] == '/' {
		path = path[:n-1]
	}
	switch string(path) {
	case "/api/v1/events":
		return epEvents
	case "/api/v1/events/batch":
		return epBatch
	case "/api/v1/events/health":
		return epEventsHealth
	case "/api/v1/commands/poll":
		return epPoll
	case "/api/v1/commands":
		return epCommands
	case "/health":
		return epHealth
	case "/metrics":
		return epMetrics
	}
	return epOther
}

// scratch is a pooled buffer for building answers.
type scratch struct{ text, out []byte }

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(sc *scratch) {
	if cap(sc.text) > 64<<10 || cap(sc.out) > 64<<10 {
		return // let an outsized buffer go
	}
	sc.text, sc.out = sc.text[:0], sc.out[:0]
	scratchPool.Put(sc)
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := s.now()
	ep := endpointOf(ctx.Path())
	defer s.finish(ctx, ep, start)
	// Stop waits for inflight to drop to 0 once stopping is set: a request
	// counts itself before it looks, and a refused one uncounts at once.
	s.inflight.Add(1)
	if s.stopping.Load() {
		s.inflight.Add(-1)
		ctx.SetConnectionClose()
		s.answerRetry(ctx, bodyStopping)
		return
	}
	defer s.inflight.Add(-1)
	if s.opts.AuthSecret != "" && ep != epHealth && !s.authorized(ctx) {
		ctx.Response.Header.SetCanonical(hdrWWWAuthenticate, bearer)
		s.answer(ctx, fasthttp.StatusUnauthorized, bodyUnauthorized)
		return
	}
	if ep == epOther {
		s.answer(ctx, fasthttp.StatusNotFound, bodyNotFound)
		return
	}
	post := ep == epEvents || ep == epBatch || ep == epEventsHealth || ep == epCommands
	allow := allowGet
	if post {
		allow = allowPost
	}
	if ctx.IsOptions() {
		ctx.Response.Header.SetCanonical(hdrAllow, allow)
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.Response.ResetBody()
		return
	}
	if post && !ctx.IsPost() || !post && !ctx.IsGet() && !ctx.IsHead() {
		ctx.Response.Header.SetCanonical(hdrAllow, allow)
		s.answer(ctx, fasthttp.StatusMethodNotAllowed, bodyMethod)
		return
	}
	if s.opts.Capture != nil && (ep == epEvents || ep == epBatch || ep == epEventsHealth || ep == epPoll) {
		s.opts.Capture.Capture(ctx, start)
	}
	switch ep {
	case epEvents:
		s.serveEvents(ctx, decode.KindEvent, start)
	case epBatch:
		s.serveEvents(ctx, decode.KindBatch, start)
	case epEventsHealth:
		s.answer(ctx, fasthttp.StatusOK, bodyOK)
	case epPoll:
		s.servePoll(ctx)
	case epCommands:
		s.serveCommands(ctx)
	case epHealth:
		s.serveHealth(ctx)
	case epMetrics:
		if s.metricsHandler == nil {
			s.answer(ctx, fasthttp.StatusNotFound, bodyNotFound)
			return
		}
		s.metricsHandler(ctx)
	}
}

// finish runs deferred after every request: it turns a panic into a 500
// (a bug, never the client's doing) and counts the request.
func (s *Server) finish(ctx *fasthttp.RequestCtx, ep endpoint, start time.Time) {
	if r := recover(); r != nil {
		s.log.Error("ingest: handler panic", "endpoint", endpointNames[ep], "panic", r)
		ctx.Response.Reset()
		s.answer(ctx, fasthttp.StatusInternalServerError, bodyInternal)
	}
	s.m.requests[ep][codeIndex(ctx.Response.StatusCode())].Inc()
	s.m.duration[ep].Observe(s.now().Sub(start).Seconds())
}

// answer answers code with the JSON body, which it does not copy: body
// must not change until the response is written (a package or server
// constant, or a new allocation; answerCopy copies a pooled buffer).
func (s *Server) answer(ctx *fasthttp.RequestCtx, code int, body []byte) {
	ctx.SetStatusCode(code)
	ctx.Response.Header.SetContentTypeBytes(ctJSON)
	ctx.Response.SetBodyRaw(body)
}

// answerCopy is answer of a body that the caller reuses (a scratch buffer).
func (s *Server) answerCopy(ctx *fasthttp.RequestCtx, code int, body []byte) {
	ctx.SetStatusCode(code)
	ctx.Response.Header.SetContentTypeBytes(ctJSON)
	ctx.SetBody(body)
}

// answerRetry answers 503 with Retry-After.
func (s *Server) answerRetry(ctx *fasthttp.RequestCtx, body []byte) {
	ctx.Response.Header.SetCanonical(hdrRetryAfter, s.retryAfter)
	s.answer(ctx, fasthttp.StatusServiceUnavailable, body)
}

// answerRejected answers 200 {"status":"error","error":<res.AppendError>}.
func (s *Server) answerRejected(ctx *fasthttp.RequestCtx, res *decode.Result) {
	sc := getScratch()
	sc.text = res.AppendError(sc.text[:0])
	if len(sc.text) == 0 {
		sc.text = append(sc.text, res.Fatal...)
	}
	if len(sc.text) == 0 {
		sc.text = append(sc.text, "event rejected"...)
	}
	sc.out = append(sc.out[:0], `{"status":"error","error":"`...)
	sc.out = appendJSONString(sc.out, sc.text)
	sc.out = append(sc.out, `"}`...)
	s.answerCopy(ctx, fasthttp.StatusOK, sc.out)
	putScratch(sc)
}

func rejectedAny(res *decode.Result) bool {
	return res.Fatal != "" || res.Rejected > 0 || len(res.Errors) > 0
}

func (s *Server) serveEvents(ctx *fasthttp.RequestCtx, kind decode.Kind, start time.Time) {
	switch ct := ctx.Request.Header.ContentType(); {
	case kind == decode.KindBatch && isNDJSON(ct):
		kind = decode.KindNDJSON
	case !isJSON(ct):
		s.m.rejected[reasonContentType].Inc()
		if kind == decode.KindBatch {
			s.answer(ctx, fasthttp.StatusOK, bodyBatchType)
		} else {
			s.answer(ctx, fasthttp.StatusOK, bodyContentType)
		}
		return
	}
	now := start.UnixNano()
	var res *decode.Result
	if len(ctx.Request.Header.ContentEncoding()) == 0 {
		// The batch takes the request's body buffer and fasthttp reads the
		// next request into a spare one: no copy.
		res = s.dec.DecodeSwap(kind, now, ctx.Request.SwapBody)
	} else {
		b, err := ctx.Request.BodyUncompressedWithLimit(max(s.bodyLimit, 1))
		switch {
		case errors.Is(err, fasthttp.ErrBodyTooLarge):
			s.answer(ctx, fasthttp.StatusRequestEntityTooLarge, s.bodyTooLarge)
			return
		case err != nil:
			s.m.rejected[reasonEncoding].Inc()
			s.answer(ctx, fasthttp.StatusOK, errorBody("cannot undo Content-Encoding "+
				strconv.Quote(string(ctx.Request.Header.ContentEncoding()))+": "+err.Error()))
			return
		}
		res = s.dec.Decode(kind, b, now)
	}
	_, err := s.ingest(context.Background(), uint32(ctx.ConnID()), res, s.dedupNow(start), s.m.acceptedHTTP)
	switch {
	case err == nil && !rejectedAny(res):
		s.answer(ctx, fasthttp.StatusOK, bodyOK)
	case err == nil:
		s.answerRejected(ctx, res)
	case errors.Is(err, route.ErrFull):
		s.answerRetry(ctx, s.bodyFull)
	default:
		s.answerRetry(ctx, bodyClosed)
	}
	s.dec.ReleaseResult(res)
}

func (s *Server) servePoll(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.Header.SetContentTypeBytes(ctText)
	if s.cmds.Len() == 0 {
		ctx.Response.ResetBody()
		return
	}
	sc := getScratch()
	if ctx.IsHead() {
		sc.out = s.cmds.peek(sc.out[:0]) // HEAD must not consume commands
	} else {
		sc.out = s.cmds.Drain(sc.out[:0])
	}
	ctx.SetBody(sc.out)
	putScratch(sc)
}

func (s *Server) serveCommands(ctx *fasthttp.RequestCtx) {
	ct := mediaType(ctx.Request.Header.ContentType())
	var asJSON bool
	switch {
	case len(ct) == 0 || isJSON(ct):
		asJSON = true
	case bytes.EqualFold(ct, mediaText):
	case bytes.EqualFold(ct, mediaForm):
		// curl -d sends a form type: look at the body instead.
		b := bytes.TrimSpace(ctx.PostBody())
		asJSON = len(b) > 0 && (b[0] == '{' || b[0] == '[')
	default:
		s.answer(ctx, fasthttp.StatusOK, bodyCmdContentType)
		return
	}
	lines, err := parseCommands(ctx.PostBody(), asJSON)
	if err == nil {
		if s.relay != nil {
			for _, l := range lines {
				if err = s.relay.Enqueue(&jimbotpb.Command{Line: l}); err != nil {
					break
				}
			}
		} else {
			err = s.cmds.enqueue(lines...)
		}
	}
	switch {
	case err == nil:
		s.answer(ctx, fasthttp.StatusOK, bodyOK)
	case errors.Is(err, ErrCommandsFull):
		s.answerRetry(ctx, bodyCmdFull)
	case status.Code(err) == codes.Unavailable:
		s.answerRetry(ctx, errorBody(err.Error()))
	default:
		s.answer(ctx, fasthttp.StatusOK, errorBody(err.Error()))
	}
}

func (s *Server) serveHealth(ctx *fasthttp.RequestCtx) {
	if s.opts.Health != nil {
		if err := s.opts.Health(); err != nil {
			body := appendJSONString([]byte(`{"status":"unhealthy","error":"`), []byte(err.Error()))
			s.answer(ctx, fasthttp.StatusServiceUnavailable, append(body, `"}`...))
			return
		}
	}
	sc := getScratch()
	sc.out = append(sc.out[:0], s.healthPrefix...)
	sc.out = strconv.AppendInt(sc.out, int64(s.now().Sub(processStart).Seconds()), 10)
	sc.out = append(sc.out, healthSuffix...)
	s.answerCopy(ctx, fasthttp.StatusOK, sc.out)
	putScratch(sc)
}

// authorized reports whether the request carries AuthSecret.
func (s *Server) authorized(ctx *fasthttp.RequestCtx) bool {
	got := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	if len(got) > len(bearerPrefix) && bytes.EqualFold(got[:len(bearerPrefix)], bearerPrefix) {
		got = bytes.TrimSpace(got[len(bearerPrefix):])
	} else {
		got = ctx.Request.Header.Peek("X-API-Key")
	}
	// Comparing digests takes the same time whatever the lengths, so not
	// even the secret's length leaks.
	sum := sha256.Sum256(got)
	return len(got) > 0 && subtle.ConstantTimeCompare(sum[:], s.secretSum[:]) == 1
}

// onReadError answers requests fasthttp could not read (the handler does
// not run for them).
func (s *Server) onReadError(ctx *fasthttp.RequestCtx, err error) {
	code, body := fasthttp.StatusBadRequest, bodyBadRequest
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		code, body = fasthttp.StatusRequestEntityTooLarge, s.bodyTooLarge
	case errors.As(err, &small):
		code, body = fasthttp.StatusRequestHeaderFieldsTooLarge, bodyHeaderTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		code, body = fasthttp.StatusRequestTimeout, bodyTimeout
	}
	s.answer(ctx, code, body)
	s.m.requests[endpointOf(ctx.Path())][codeIndex(code)].Inc()
}

// onExpect answers "Expect: 100-continue": 413 for a Content-Length of
// MaxBody or more, before the client sends the body.
func (s *Server) onExpect(ctx *fasthttp.RequestCtx) int {
	if ctx.Request.Header.ContentLength() > s.bodyLimit {
		s.m.requests[endpointOf(ctx.Path())][codeIndex(fasthttp.StatusRequestEntityTooLarge)].Inc()
		return fasthttp.StatusRequestEntityTooLarge
	}
	return fasthttp.StatusContinue
}

// mediaType is the Content-Type without parameters and spaces.
func mediaType(ct []byte) []byte {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return bytes.TrimSpace(ct)
}

// isJSON reports whether a Content-Type is acceptable for an event body:
// missing, application/json (any parameters), text/json or */*+json.
func isJSON(ct []byte) bool {
	ct = mediaType(ct)
	if len(ct) == 0 || bytes.EqualFold(ct, mediaJSON) || bytes.EqualFold(ct, mediaTextJSON) {
		return true
	}
	return len(ct) > len(suffixJSON) && bytes.EqualFold(ct[len(ct)-len(suffixJSON):], suffixJSON)
}

// isNDJSON reports whether a Content-Type names newline-delimited JSON:
// application/x-ndjson, application/ndjson or application/jsonl (any
// parameters).
func isNDJSON(ct []byte) bool {
	ct = mediaType(ct)
	for _, m := range mediaNDJSON {
		if bytes.EqualFold(ct, m) {
			return true
		}
	}
	return false
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s escaped for the inside of a JSON string:
// quote, backslash and control bytes escaped, invalid UTF-8 as U+FFFD.
func appendJSONString(dst, s []byte) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	return append(dst, s[start:]...)
}
