package decode_test

import (
	"fmt"

	"github.com/jimbot/jimbus/ingest/decode"
)

func ExampleDecoder_Decode() {
	d := decode.New(decode.Options{})
	body := []byte(`{"batch_id":"b1","events":[` +
		`{"type":"HEARTBEAT","source":"BalatroMCP","payload":{"uptime":nan},"timestamp":248379.3748},` +
		`{"type":"INVALID_TYPE","source":"BalatroMCP","payload":{}}]}`)
	r := d.Decode(decode.KindBatch, body, 1751439161000000000)
	for i, ev := range r.Batch.Events {
		fmt.Printf("%s %s %s%s\n", r.Batch.Topics[i], ev.BatchId, ev.PayloadJson, ev.DeadletterReason)
	}
	fmt.Println(string(r.AppendError(nil)))
	r.Batch.Release()
	d.ReleaseResult(r)
	// Output:
	// system.heartbeat b1 {"uptime":null}
	// system.deadletter b1 Invalid format - Unknown event type: INVALID_TYPE
	// Processed 1/2 events. Errors: Event 1: Invalid format - Unknown event type: INVALID_TYPE
}
