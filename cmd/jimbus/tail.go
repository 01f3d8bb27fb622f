package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// runTail subscribes to a running bus and prints every event as one JSON
// line, like `nats sub`.
func runTail(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("jimbus tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:50051", "gRPC address of the bus")
	id := fs.String("id", "jimbus-tail", "subscriber id shown in the bus's metrics")
	count := fs.Int("count", 0, "exit after this many events (0: run until interrupted)")
	viewFlag := fs.String("payload-view", "default", "typed: with each payload's typed view; json: payload_json only; default: the bus's default")
	var cf clientFlags
	cf.register(fs)
	fs.Usage = usageWithEnv(fs, "Usage: jimbus tail [flags] [PATTERN...]\n\n"+
		"Prints every event whose topic matches a pattern (default \">\", all) as one JSON line.\n"+
		"Patterns: dot-separated, '*' is one segment, a trailing '>' one or more.\n\nFlags:\n")
	if err := parseWithEnv(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	view, err := route.ParseView(*viewFlag)
	if err != nil {
		fmt.Fprintln(stderr, "jimbus tail:", err)
		return 2
	}
	patterns := fs.Args()
	if len(patterns) == 0 {
		patterns = []string{">"}
	}
	dopts, err := cf.dialOptions()
	if err != nil {
		fmt.Fprintln(stderr, "jimbus tail:", err)
		return 2
	}
	conn, err := grpc.NewClient(*addr, dopts...)
	if err != nil {
		fmt.Fprintln(stderr, "jimbus tail:", err)
		return 1
	}
	defer conn.Close()
	stream, err := jimbotpb.NewEventBusClient(conn).Subscribe(ctx, &jimbotpb.SubscribeRequest{
		TopicPatterns: patterns, SubscriberId: *id, PayloadView: view,
	})
	if err != nil {
		fmt.Fprintln(stderr, "jimbus tail:", err)
		return 1
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	n := 0
	for {
		batch, err := stream.Recv()
		if err != nil {
			w.Flush()
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || ctx.Err() != nil {
				return 0
			}
			fmt.Fprintln(stderr, "jimbus tail:", err)
			return 1
		}
		for _, ev := range batch.Events {
			w.Write(appendEventLine(nil, ev))
			n++
			if *count > 0 && n >= *count {
				return 0
			}
		}
		w.Flush()
	}
}

// tailLine is what `jimbus tail` prints for one event.
type tailLine struct {
	Seq             uint64            `json:"seq"`
	Topic           string            `json:"topic"`
	Type            string            `json:"type"`
	Subtype         string            `json:"subtype,omitempty"`
	Source          string            `json:"source"`
	EventID         string            `json:"event_id"`
	BatchID         string            `json:"batch_id,omitempty"`
	Timestamp       int64             `json:"timestamp"`
	ClientTimestamp float64           `json:"client_timestamp,omitempty"`
	ReceivedAt      string            `json:"received_at"`
	Version         int32             `json:"version,omitempty"`
	Priority        string            `json:"priority,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	Repairs         uint32            `json:"repairs,omitempty"`
	Payload         json.RawMessage   `json:"payload,omitempty"`
	Extra           json.RawMessage   `json:"extra,omitempty"`
	Deadletter      string            `json:"deadletter_reason,omitempty"`
	Raw             string            `json:"raw,omitempty"`
}

// appendEventLine appends ev as one JSON line. The payload is inlined as
// JSON when it is valid JSON, else quoted.
func appendEventLine(dst []byte, ev *jimbotpb.Event) []byte {
	typ := ev.GetTypeName()
	if typ == "" {
		typ = ev.GetType().String()
	}
	l := tailLine{
		Seq: ev.GetBusSequence(), Topic: ev.GetTopic(), Type: typ, Subtype: ev.GetSubtype(),
		Source: ev.GetSource(), EventID: ev.GetEventId(), BatchID: ev.GetBatchId(),
		Timestamp: ev.GetTimestamp(), ClientTimestamp: ev.GetClientTimestamp(),
		ReceivedAt: time.Unix(0, ev.GetReceivedAtNs()).UTC().Format(time.RFC3339Nano),
		Version:    ev.GetVersion(), Priority: ev.GetPriority(), Metadata: ev.GetMetadata(),
		Repairs: ev.GetRepairs(), Payload: rawJSON(ev.GetPayloadJson()), Extra: rawJSON(ev.GetExtraJson()),
		Deadletter: ev.GetDeadletterReason(),
	}
	if len(ev.GetRaw()) > 0 {
		if utf8.Valid(ev.GetRaw()) {
			l.Raw = string(ev.GetRaw())
		} else {
			l.Raw = fmt.Sprintf("%q", ev.GetRaw())
		}
	}
	b, err := json.Marshal(l)
	if err != nil {
		// The payload was not JSON after all: print it quoted.
		l.Payload, _ = json.Marshal(string(ev.GetPayloadJson()))
		l.Extra, _ = json.Marshal(string(ev.GetExtraJson()))
		b, _ = json.Marshal(l)
	}
	return append(append(dst, b...), '\n')
}

func rawJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	if !json.Valid(b) {
		q, _ := json.Marshal(string(b))
		return q
	}
	return b
}
