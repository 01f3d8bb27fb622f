package loadtest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// FormatVersion is the capture format version written in every record ("v").
const FormatVersion = 1

// ErrClosed is returned by Recorder.Record after Close.
var ErrClosed = errors.New("loadtest: recorder closed")

// Record is one HTTP request as it arrived at the bus.
type Record struct {
	// At is the arrival time in Unix nanoseconds.
	At int64
	// Method is the HTTP method, e.g. "POST".
	Method string
	// Path is the request path as sent, query string included if any.
	Path string
	// Header holds the headers that matter (Content-Type, Content-Encoding,
	// Connection, Expect, User-Agent), name and value, in the order seen.
	// A header that was absent is simply not listed.
	Header [][2]string
	// Body is the request body exactly as received (after nothing: a
	// Content-Encoding is not undone). nil and empty are the same.
	Body []byte
}

// HeaderValue returns the value of the first header named name (ASCII
// case-insensitive) and whether it was present.
func (r *Record) HeaderValue(name string) (string, bool) {
	for _, h := range r.Header {
		if strings.EqualFold(h[0], name) {
			return h[1], true
		}
	}
	return "", false
}

// CapturedHeaders lists the request headers a capture keeps.
var CapturedHeaders = []string{"Content-Type", "Content-Encoding", "Connection", "Expect", "User-Agent"}

// AppendRecord appends r to dst as one capture line (newline included) and
// returns the extended slice. It never fails: a body that is not valid UTF-8
// is written as body_b64.
func AppendRecord(dst []byte, r *Record) []byte {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, FormatVersion, 10)
	dst = append(dst, `,"at":`...)
	dst = strconv.AppendInt(dst, r.At, 10)
	dst = append(dst, `,"method":`...)
	dst = appendJSONString(dst, r.Method)
	dst = append(dst, `,"path":`...)
	dst = appendJSONString(dst, r.Path)
	if len(r.Header) > 0 {
		dst = append(dst, `,"header":[`...)
		for i, h := range r.Header {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '[')
			dst = appendJSONString(dst, h[0])
			dst = append(dst, ',')
			dst = appendJSONString(dst, h[1])
			dst = append(dst, ']')
		}
		dst = append(dst, ']')
	}
	if len(r.Body) > 0 {
		if utf8.Valid(r.Body) {
			dst = append(dst, `,"body":`...)
			dst = appendJSONString(dst, r.Body)
		} else {
			dst = append(dst, `,"body_b64":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, r.Body)
			dst = append(dst, '"')
		}
	}
	return append(dst, "}\n"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. s must be valid UTF-8 for the
// result to decode back to the same bytes (invalid sequences are written raw
// and a decoder replaces them); AppendRecord never passes an invalid body.
func appendJSONString[S string | []byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// wireRecord is the decoded form of one capture line.
type wireRecord struct {
	V       int         `json:"v"`
	At      int64       `json:"at"`
	Method  string      `json:"method"`
	Path    string      `json:"path"`
	Header  [][2]string `json:"header"`
	Body    *string     `json:"body"`
	BodyB64 []byte      `json:"body_b64"`
}

// ParseRecord decodes one capture line (with or without its newline).
func ParseRecord(line []byte) (Record, error) {
	var w wireRecord
	if err := json.Unmarshal(line, &w); err != nil {
		return Record{}, fmt.Errorf("cannot decode capture record: %w", err)
	}
	if w.V != FormatVersion {
		return Record{}, fmt.Errorf("capture record has format version %d; this reader knows %d", w.V, FormatVersion)
	}
	r := Record{At: w.At, Method: w.Method, Path: w.Path, Header: w.Header}
	switch {
	case w.Body != nil && w.BodyB64 != nil:
		return Record{}, errors.New("capture record has both body and body_b64")
	case w.Body != nil:
		r.Body = []byte(*w.Body)
	case w.BodyB64 != nil:
		r.Body = w.BodyB64
	}
	return r, nil
}

// Reader reads capture records one at a time from a capture stream, plain
// or gzip-compressed (recognised by its magic bytes).
type Reader struct {
	br   *bufio.Reader
	gz   *gzip.Reader
	line int
	err  error
}

// NewReader returns a Reader of r. A gzip stream is decompressed.
func NewReader(r io.Reader) *Reader {
	br := bufio.NewReaderSize(r, 256<<10)
	rd := &Reader{br: br}
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			rd.err = fmt.Errorf("cannot open gzip capture: %w", err)
			return rd
		}
		rd.gz = gz
		rd.br = bufio.NewReaderSize(gz, 256<<10)
	}
	return rd
}

// Next returns the next record; io.EOF after the last one. Empty lines are
// skipped. The returned record owns its memory.
func (rd *Reader) Next() (Record, error) {
	if rd.err != nil {
		return Record{}, rd.err
	}
	for {
		line, err := rd.br.ReadBytes('\n')
		if len(line) > 0 {
			rd.line++
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if line[len(line)-1] != '\n' {
				rd.err = fmt.Errorf("capture line %d is truncated (no newline)", rd.line)
				return Record{}, rd.err
			}
			r, perr := ParseRecord(line)
			if perr != nil {
				rd.err = fmt.Errorf("capture line %d: %w", rd.line, perr)
				return Record{}, rd.err
			}
			return r, nil
		}
		if err != nil {
			rd.err = err
			return Record{}, err
		}
	}
}

// ReadAll returns every remaining record.
func (rd *Reader) ReadAll() ([]Record, error) {
	var out []Record
	for {
		r, err := rd.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
}

// ReadFile reads every record of a capture file (plain or gzip).
func ReadFile(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	return recs, nil
}

// WriteFile writes recs to path as a capture file, gzip-compressed when the
// name ends in ".gz". An existing file is replaced.
func WriteFile(path string, recs []Record) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	var w io.Writer = f
	var gz *gzip.Writer
	if strings.HasSuffix(path, ".gz") {
		gz, _ = gzip.NewWriterLevel(f, gzip.BestCompression)
		w = gz
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	var buf []byte
	for i := range recs {
		buf = AppendRecord(buf[:0], &recs[i])
		if _, err = bw.Write(buf); err != nil {
			break
		}
	}
	if err == nil {
		err = bw.Flush()
	}
	if gz != nil && err == nil {
		err = gz.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

// RotatedFiles returns the files of a Recorder at path that exist, oldest
// first: path.N ... path.1, path.
func RotatedFiles(path string) ([]string, error) {
	var out []string
	for i := 1; ; i++ {
		p := path + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err != nil {
			if os.IsNotExist(err) {
				break
			}
			return nil, err
		}
		out = append(out, p)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if _, err := os.Stat(path); err == nil {
		out = append(out, path)
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	return out, nil
}

const (
	defaultMaxBytes      = 256 << 20
	defaultKeep          = 5
	defaultBufferSize    = 256 << 10
	defaultFlushInterval = time.Second
)

// RecorderOptions configures a Recorder. The zero value (but for Path)
// works; every field documents its default.
type RecorderOptions struct {
	// Path is the capture file. Required. An existing non-empty file is
	// rotated away (to Path.1) when the Recorder opens.
	Path string
	// MaxBytes is the size at which the file is rotated: it is renamed to
	// Path.1 (Path.1 to Path.2 and so on) and a new Path is started. A
	// record is never split, so a single record larger than MaxBytes makes
	// a file of its own. Default 256 MiB.
	MaxBytes int64
	// Keep is the number of rotated files kept (Path.1 newest ... Path.Keep
	// oldest); older ones are removed. So the capture takes at most about
	// (Keep+1)*MaxBytes. Default 5; negative keeps none.
	Keep int
	// BufferSize is how many bytes are buffered before a write to the file.
	// Default 256 KiB.
	BufferSize int
	// FlushInterval bounds how long a record stays in the buffer: Record
	// writes the buffer out when the last write is older. Default 1s;
	// negative writes on every Record.
	FlushInterval time.Duration
}

// Recorder appends capture records to a file with size-based rotation.
// Record, Flush and Close are safe for concurrent use.
type Recorder struct {
	opts RecorderOptions

	mu        sync.Mutex
	f         *os.File
	buf       []byte
	size      int64 // bytes in the current file, buffered ones included
	lastFlush time.Time
	err       error // sticky write error
	closed    bool
}

// NewRecorder validates opts and opens the capture file.
func NewRecorder(opts RecorderOptions) (*Recorder, error) {
	if opts.Path == "" {
		return nil, errors.New("loadtest: RecorderOptions.Path is empty")
	}
	if opts.MaxBytes < 0 {
		return nil, fmt.Errorf("loadtest: MaxBytes %d is negative", opts.MaxBytes)
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = defaultMaxBytes
	}
	if opts.Keep == 0 {
		opts.Keep = defaultKeep
	}
	if opts.Keep < 0 {
		opts.Keep = 0
	}
	if opts.BufferSize <= 0 {
		opts.BufferSize = defaultBufferSize
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = defaultFlushInterval
	}
	r := &Recorder{opts: opts, buf: make([]byte, 0, opts.BufferSize+16<<10), lastFlush: time.Now()}
	if st, err := os.Stat(opts.Path); err == nil && st.Size() > 0 {
		if err := r.shiftLocked(); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(opts.Path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open capture file: %w", err)
	}
	r.f = f
	return r, nil
}

// Record appends one record. It copies what it keeps (the record is encoded
// into the Recorder's buffer before Record returns), so the caller may reuse
// r.Body at once, and the strings may even be unsafe.String views of bytes
// that are reused after Record returns (fasthttp's header and path buffers).
// It does not allocate in steady state. A write error is sticky: every later
// call returns it.
func (r *Recorder) Record(rec Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if r.err != nil {
		return r.err
	}
	start := len(r.buf)
	r.buf = AppendRecord(r.buf, &rec)
	n := int64(len(r.buf) - start)
	if r.size > 0 && r.size+n > r.opts.MaxBytes {
		if err := r.writeLocked(r.buf[:start]); err != nil {
			return err
		}
		if err := r.rotateLocked(); err != nil {
			return err
		}
		r.buf = r.buf[:copy(r.buf, r.buf[start:])]
	}
	r.size += n
	if len(r.buf) >= r.opts.BufferSize || r.opts.FlushInterval < 0 || time.Since(r.lastFlush) >= r.opts.FlushInterval {
		return r.flushLocked()
	}
	return nil
}

// Flush writes buffered records to the file.
func (r *Recorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	return r.flushLocked()
}

// Close flushes and closes the file. Calling it again returns nil.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	err := r.flushLocked()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (r *Recorder) flushLocked() error {
	if r.err != nil {
		return r.err
	}
	err := r.writeLocked(r.buf)
	r.buf = r.buf[:0]
	r.lastFlush = time.Now()
	return err
}

func (r *Recorder) writeLocked(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if _, err := r.f.Write(b); err != nil {
		r.err = fmt.Errorf("cannot write capture file: %w", err)
		return r.err
	}
	return nil
}

// rotateLocked closes the current file, shifts the rotated ones and opens a
// fresh one. The buffer must have been written.
func (r *Recorder) rotateLocked() error {
	if err := r.f.Close(); err != nil {
		r.err = fmt.Errorf("cannot close capture file: %w", err)
		return r.err
	}
	if err := r.shiftLocked(); err != nil {
		r.err = err
		return err
	}
	f, err := os.OpenFile(r.opts.Path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		r.err = fmt.Errorf("cannot open capture file: %w", err)
		return r.err
	}
	r.f = f
	r.size = 0
	return nil
}

// shiftLocked renames Path.i to Path.i+1 (dropping Path.Keep) and Path to
// Path.1; with Keep 0 it removes Path.
func (r *Recorder) shiftLocked() error {
	p := r.opts.Path
	if r.opts.Keep == 0 {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("cannot remove old capture file: %w", err)
		}
		return nil
	}
	name := func(i int) string { return p + "." + strconv.Itoa(i) }
	if err := os.Remove(name(r.opts.Keep)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("cannot remove old capture file: %w", err)
	}
	for i := r.opts.Keep - 1; i >= 1; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("cannot rotate capture file: %w", err)
		}
	}
	if err := os.Rename(p, name(1)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("cannot rotate capture file: %w", err)
	}
	return nil
}
