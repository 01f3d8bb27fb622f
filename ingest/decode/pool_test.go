package decode

import (
	"reflect"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// TestPutResultResets: putResult leaves no field of a Result set but its
// buffers' capacity (a new field must be reset there too).
func TestPutResultResets(t *testing.T) {
	r := getResult()
	v := reflect.ValueOf(r).Elem()
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if f.Name == "pooled" {
			continue
		}
		fv := reflect.NewAt(f.Type, v.Field(i).Addr().UnsafePointer()).Elem()
		switch fv.Kind() {
		case reflect.Slice:
			fv.Set(reflect.MakeSlice(f.Type, 1, 4))
		case reflect.String:
			fv.SetString("x")
		case reflect.Int, reflect.Int64:
			fv.SetInt(1)
		case reflect.Uint8, reflect.Uint32:
			fv.SetUint(1)
		case reflect.Pointer:
			fv.Set(reflect.ValueOf(route.NewBatch(nil)))
		default:
			t.Fatalf("field %s of kind %s: teach this test to set it", f.Name, fv.Kind())
		}
	}
	putResult(r)
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if f.Name == "pooled" {
			continue
		}
		fv := reflect.NewAt(f.Type, v.Field(i).Addr().UnsafePointer()).Elem()
		if fv.Kind() == reflect.Slice {
			require.Zero(t, fv.Len(), f.Name)
			continue
		}
		require.True(t, fv.IsZero(), "%s not reset by putResult", f.Name)
	}
	// take it back out of the pool, whatever else is in there
	for r.pooled.free.Load() {
		getResult()
	}
}

// TestPoolSurvivesGC: the decoder's kept states and results outlive the GCs
// that empty sync.Pool: decoding after two GCs allocates only sync.Pool's own
// per-P arrays, made again after a GC (two a pool), where a state made anew
// would grow its slabs and buffers (over 300 allocations for this batch).
func TestPoolSurvivesGC(t *testing.T) {
	if testing.Short() {
		t.Skip("GC")
	}
	d := New(Options{})
	body := syntheticBatch(50)
	decode := func() {
		r := d.Decode(KindBatch, body, 1)
		require.Equal(t, 50, r.Accepted)
		r.Batch.Release()
		d.ReleaseResult(r)
	}
	decode()
	n := testing.AllocsPerRun(5, func() {
		runtime.GC()
		runtime.GC()
		decode()
	})
	if raceEnabled {
		return // the race detector allocates for its own accounting
	}
	require.LessOrEqual(t, n, 4.0)
}

// TestKeptBounded: a state grown past the kept bounds by a large request is
// no longer kept (the GC may take it once the sync.Pool drops it).
func TestKeptBounded(t *testing.T) {
	d := New(Options{})
	big := []byte(`{"type":"ERROR","source":"s","payload":{"message":"` + strings.Repeat("x", maxKeptBytes) + `"}}`)
	r := d.Decode(KindEvent, big, 1)
	require.Equal(t, 1, r.Accepted)
	st := r.Batch.Owner.(*batchState)
	r.Batch.Release()
	d.ReleaseResult(r)
	require.False(t, st.pooled.kept)
	statePool.mu.Lock()
	defer statePool.mu.Unlock()
	require.LessOrEqual(t, statePool.n, maxKept)
	for _, k := range statePool.s[:statePool.n] {
		require.NotSame(t, st, k)
	}
}

// TestStateReuse: a state that comes back from the pool is reset by
// getState (readyState), not when its batch was freed, and then decodes the
// next request as a new one would; its footprint still counts the values
// that a large batch grew its slabs by.
func TestStateReuse(t *testing.T) {
	d := New(Options{})
	r := d.Decode(KindBatch, syntheticBatch(50), 1)
	require.Equal(t, 50, r.Accepted)
	st := r.Batch.Owner.(*batchState)
	d.ReleaseResult(r) // the batch stays this test's: st is not pooled
	require.GreaterOrEqual(t, st.counts.held, 50*int(unsafe.Sizeof(jimbotpb.Event{})))

	require.Same(t, st, readyState(st))
	body := `{"type":"HEARTBEAT","source":"s","payload":{"version":"0.1.0","game_state":"1","uptime":2.5,"headless":true}}`
	st.orig = append(st.orig[:0], body...)
	r = d.decode(KindEvent, st, 2)
	defer d.ReleaseResult(r)
	defer r.Batch.Release()
	require.Equal(t, 1, r.Accepted)
	require.Equal(t, 1, len(r.Batch.Events))
	require.Equal(t, "0.1.0", r.Batch.Events[0].GetHeartbeat().GetVersion())
	require.True(t, r.Batch.Events[0].GetHeartbeat().GetHeadless())
	require.Equal(t, [1 + numTyped]int32{0: 1, 1: 1}, st.counts.n, "one event, one heartbeat view")
	require.GreaterOrEqual(t, r.Batch.Bytes, st.counts.held+len(body))
}
