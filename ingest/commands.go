package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// ErrCommandsFull is returned when the command queue has no room; HTTP
// answers 503 with Retry-After. It carries the gRPC status Unavailable, so
// that SendCommand tells the caller to retry later.
var ErrCommandsFull error = commandsFullError{}

type commandsFullError struct{}

func (commandsFullError) Error() string { return "ingest: command queue full" }

// GRPCStatus makes status.FromError see codes.Unavailable.
func (commandsFullError) GRPCStatus() *status.Status {
	return status.New(codes.Unavailable, "command queue full; retry later (the game polls every 0.5 s)")
}

// ErrBadCommand is wrapped by the errors of commands that cannot become a
// line: empty, containing CR or LF, too long, or with an unusable payload
// (gRPC: the caller's fault, InvalidArgument).
var ErrBadCommand = errors.New("ingest: bad command")

// MaxCommandLine is the longest command line accepted, in bytes.
const MaxCommandLine = 1024

// Commands is a bounded FIFO of command lines for the game, served by GET
// /api/v1/commands/poll: each line is served once, in the order queued.
//
// Every BalatroMCP game polls the same hard-coded URL
// (http://localhost:8080/api/v1/commands/poll), so a command goes to
// whichever game polls first. It is safe for concurrent use.
type Commands struct {
	mu    sync.Mutex
	lines []string // ring of len = capacity
	head  int      // index of the oldest line
	n     int      // lines queued

	pending atomic.Int64 // == n; read without the lock by the empty poll

	queued, served, refused prometheus.Counter // nil when not counted
}

// NewCommands returns an empty queue of at most size lines (default 1024
// when size <= 0).
func NewCommands(size int) *Commands {
	if size <= 0 {
		size = defaultCommandQueueSize
	}
	return &Commands{lines: make([]string, size)}
}

// Len is the number of lines waiting.
func (c *Commands) Len() int { return int(c.pending.Load()) }

// Enqueue queues cmd: its line when set, else its type, followed by
// ":<n>" when payload_json holds {"index":n} or {"position":n} (index wins).
func (c *Commands) Enqueue(cmd *jimbotpb.Command) error {
	line, err := CommandLine(cmd.GetType(), cmd.GetLine(), cmd.GetPayloadJson())
	if err != nil {
		return err
	}
	return c.enqueue(line)
}

// EnqueueLine queues one line exactly as given.
func (c *Commands) EnqueueLine(line string) error {
	if err := validateLine(line); err != nil {
		return err
	}
	return c.enqueue(line)
}

func (c *Commands) enqueue(lines ...string) error {
	if len(lines) > len(c.lines) {
		// It could never fit: a permanent error, not "retry later".
		if c.refused != nil {
			c.refused.Add(float64(len(lines)))
		}
		return fmt.Errorf("%w: %d commands in one request; the queue holds at most %d (--command-queue)",
			ErrBadCommand, len(lines), len(c.lines))
	}
	c.mu.Lock()
	if c.n+len(lines) > len(c.lines) {
		c.mu.Unlock()
		if c.refused != nil {
			c.refused.Add(float64(len(lines)))
		}
		return ErrCommandsFull
	}
	for _, l := range lines {
		c.lines[(c.head+c.n)%len(c.lines)] = l
		c.n++
	}
	c.pending.Store(int64(c.n))
	c.mu.Unlock()
	if c.queued != nil {
		c.queued.Add(float64(len(lines)))
	}
	return nil
}

// Drain appends every waiting line to dst, each followed by "\n", removes
// them from the queue and returns dst. With nothing waiting it returns dst
// unchanged without taking the lock.
func (c *Commands) Drain(dst []byte) []byte {
	if c.pending.Load() == 0 {
		return dst
	}
	c.mu.Lock()
	n := c.n
	for i := 0; i < n; i++ {
		j := (c.head + i) % len(c.lines)
		dst = append(dst, c.lines[j]...)
		dst = append(dst, '\n')
		c.lines[j] = ""
	}
	c.head = (c.head + n) % len(c.lines)
	c.n = 0
	c.pending.Store(0)
	c.mu.Unlock()
	if c.served != nil && n > 0 {
		c.served.Add(float64(n))
	}
	return dst
}

// peek appends the waiting lines like Drain, without removing them.
func (c *Commands) peek(dst []byte) []byte {
	c.mu.Lock()
	for i := 0; i < c.n; i++ {
		dst = append(dst, c.lines[(c.head+i)%len(c.lines)]...)
		dst = append(dst, '\n')
	}
	c.mu.Unlock()
	return dst
}

func validateLine(line string) error {
	switch {
	case line == "":
		return fmt.Errorf("%w: empty", ErrBadCommand)
	case len(line) > MaxCommandLine:
		return fmt.Errorf("%w: longer than %d bytes", ErrBadCommand, MaxCommandLine)
	case strings.ContainsAny(line, "\r\n"):
		return fmt.Errorf("%w: %q contains a line break", ErrBadCommand, line)
	}
	return nil
}

// CommandLine builds the command line of a command: line when it is not
// empty, else typ, followed by ":<n>" when payload is a JSON object with a
// non-negative integer "index" or "position" (a number or a string of
// digits; index wins). Other payload fields are ignored: BalatroMCP reads
// only select_card's index from a line.
func CommandLine(typ, line string, payload []byte) (string, error) {
	if line != "" {
		return line, validateLine(line)
	}
	if typ == "" {
		return "", fmt.Errorf("%w: no type", ErrBadCommand)
	}
	if err := validateLine(typ); err != nil {
		return "", err
	}
	payload = bytes.TrimSpace(payload)
	if len(payload) == 0 || string(payload) == "null" {
		return typ, nil
	}
	var p struct {
		Index    json.RawMessage `json:"index"`
		Position json.RawMessage `json:"position"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return "", fmt.Errorf("%w: payload of %q is not a JSON object: %v", ErrBadCommand, typ, err)
	}
	arg := p.Index
	name := "index"
	if isAbsent(arg) {
		arg, name = p.Position, "position"
	}
	if isAbsent(arg) {
		return typ, nil
	}
	n, err := parseIndex(arg)
	if err != nil {
		return "", fmt.Errorf("%w: %s of %q: %v", ErrBadCommand, name, typ, err)
	}
	line = typ + ":" + strconv.FormatUint(n, 10)
	return line, validateLine(line)
}

func isAbsent(v json.RawMessage) bool {
	return len(v) == 0 || string(v) == "null"
}

// parseIndex reads a non-negative integer written as a JSON number (0, 2.0)
// or a string of one.
func parseIndex(v json.RawMessage) (uint64, error) {
	s := string(v)
	if s[0] == '"' {
		if err := json.Unmarshal(v, &s); err != nil {
			return 0, err
		}
		s = strings.TrimSpace(s)
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f != float64(uint32(f)) {
		return 0, fmt.Errorf("%s is not a non-negative integer", v)
	}
	return uint64(f), nil
}

// parseCommands turns a POST /api/v1/commands body into lines. A JSON body
// (asJSON) is one command object {"type":..,"payload":{..}} (or {"line":..})
// or an array of them; a text body holds one line per line (CR LF or LF;
// blank lines are skipped).
func parseCommands(body []byte, asJSON bool) ([]string, error) {
	if !asJSON {
		var lines []string
		for len(body) > 0 {
			l := body
			if i := bytes.IndexByte(body, '\n'); i >= 0 {
				l, body = body[:i], body[i+1:]
			} else {
				body = nil
			}
			l = bytes.TrimSuffix(l, []byte{'\r'})
			if len(bytes.TrimSpace(l)) == 0 {
				continue
			}
			if err := validateLine(string(l)); err != nil {
				return nil, err
			}
			lines = append(lines, string(l))
		}
		if len(lines) == 0 {
			return nil, fmt.Errorf("%w: no command line in the body", ErrBadCommand)
		}
		return lines, nil
	}
	type jsonCommand struct {
		Type    string          `json:"type"`
		Line    string          `json:"line"`
		Payload json.RawMessage `json:"payload"`
	}
	var cmds []jsonCommand
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if err := json.Unmarshal(trimmed, &cmds); err != nil {
			return nil, fmt.Errorf("%w: body is not a JSON array of commands: %v", ErrBadCommand, err)
		}
	} else {
		var c jsonCommand
		if err := json.Unmarshal(trimmed, &c); err != nil {
			return nil, fmt.Errorf("%w: body is not a JSON command: %v", ErrBadCommand, err)
		}
		cmds = append(cmds, c)
	}
	if len(cmds) == 0 {
		return nil, fmt.Errorf("%w: no command in the body", ErrBadCommand)
	}
	lines := make([]string, 0, len(cmds))
	for i, c := range cmds {
		l, err := CommandLine(c.Type, c.Line, c.Payload)
		if err != nil {
			if len(cmds) > 1 {
				return nil, fmt.Errorf("command %d: %w", i, err)
			}
			return nil, err
		}
		lines = append(lines, l)
	}
	return lines, nil
}

// CommandQueue takes commands for the game (grpcout's SendCommand uses
// the same interface).
type CommandQueue interface {
	Enqueue(cmd *jimbotpb.Command) error
}

// RelayCommands sends the commands posted to POST /api/v1/commands through
// q (one Command per line) instead of straight into Commands(): a backend
// that relays commands to every instance of a cluster (jetstream) passes
// them back into each instance's Commands(). Call it before Start.
func (s *Server) RelayCommands(q CommandQueue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.listeners) > 0 {
		panic("BUG: ingest: RelayCommands after Start")
	}
	s.relay = q
}
