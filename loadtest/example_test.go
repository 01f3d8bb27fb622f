package loadtest_test

import (
	"fmt"
	"os"

	"github.com/jimbot/jimbus/loadtest"
)

func ExampleAppendRecord() {
	r := loadtest.Record{
		At:     1751439161116581332,
		Method: "POST",
		Path:   "/api/v1/events/batch",
		Header: [][2]string{{"Content-Type", "application/json"}},
		Body:   []byte(`{"chips":nan,"s":"tab` + "\t" + `raw` + "\x01" + `"}`),
	}
	os.Stdout.Write(loadtest.AppendRecord(nil, &r))
	bad := loadtest.Record{At: 1, Method: "POST", Path: "/api/v1/events", Body: []byte{0xff, '{'}}
	os.Stdout.Write(loadtest.AppendRecord(nil, &bad))
	// Output:
	// {"v":1,"at":1751439161116581332,"method":"POST","path":"/api/v1/events/batch","header":[["Content-Type","application/json"]],"body":"{\"chips\":nan,\"s\":\"tab\traw\u0001\"}"}
	// {"v":1,"at":1,"method":"POST","path":"/api/v1/events","body_b64":"/3s="}
}

func ExampleHistogram() {
	var h loadtest.Histogram
	for v := int64(1); v <= 1000; v++ {
		h.Record(v * 1000) // 1µs .. 1ms
	}
	fmt.Println(h.Count(), h.Quantile(0.5), h.Quantile(0.99), h.Max())
	// Output:
	// 1000 501759 991231 1000000
}

func ExampleGenerate() {
	recs, err := loadtest.Generate(loadtest.GenOptions{Seed: 1, Duration: 10e9})
	if err != nil {
		panic(err)
	}
	fmt.Println(recs[0].Method, recs[0].Path, len(recs[0].Body))
	fmt.Println(recs[1].Method, recs[1].Path)
	// Output:
	// POST /api/v1/events 124
	// POST /api/v1/events/batch
}
