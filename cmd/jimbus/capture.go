package main

import (
	"flag"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/jimbot/jimbus/loadtest"
)

// captureFlags are the serve flags of --capture.
type captureFlags struct {
	path     string
	maxBytes int64
	keep     int
}

func (c *captureFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.path, "capture", "", "record every request to the event endpoints and the command poll, byte-exact, to this file (the load tester's capture format; replay it with `loadtest replay`)")
	fs.Int64Var(&c.maxBytes, "capture-max-bytes", 256<<20, "with --capture, rotate the file at this size (FILE.1, FILE.2, ...)")
	fs.IntVar(&c.keep, "capture-keep", 5, "with --capture, how many rotated files to keep")
}

// open returns the recorder, or nil without --capture.
func (c *captureFlags) open() (*capturer, error) {
	if c.path == "" {
		return nil, nil
	}
	rec, err := loadtest.NewRecorder(loadtest.RecorderOptions{Path: c.path, MaxBytes: c.maxBytes, Keep: c.keep})
	if err != nil {
		return nil, fmt.Errorf("cannot open --capture %q: %w", c.path, err)
	}
	return &capturer{rec: rec}, nil
}

// capturer adapts a loadtest.Recorder to ingest.Capturer.
type capturer struct {
	rec     *loadtest.Recorder
	headers sync.Pool // *[][2]string
}

// Capture records one request. The strings alias fasthttp's buffers only
// until Record returns, which copies them.
func (c *capturer) Capture(ctx *fasthttp.RequestCtx, at time.Time) {
	hp, _ := c.headers.Get().(*[][2]string)
	if hp == nil {
		hp = new([][2]string)
	}
	h := (*hp)[:0]
	for _, name := range loadtest.CapturedHeaders {
		if v := ctx.Request.Header.Peek(name); len(v) > 0 {
			h = append(h, [2]string{name, view(v)})
		}
	}
	// An error (disk full) stops nothing: the bus must keep serving.
	_ = c.rec.Record(loadtest.Record{
		At: at.UnixNano(), Method: view(ctx.Method()), Path: view(ctx.RequestURI()),
		Header: h, Body: ctx.Request.Body(),
	})
	clear(h)
	*hp = h[:0]
	c.headers.Put(hp)
}

func (c *capturer) Close() error { return c.rec.Close() }

// view is b as a string without a copy; valid while b is.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
