package loadtest

import (
	"sync"
	"sync/atomic"
)

// idKey is a UUID event id as 16 bytes.
type idKey [16]byte

// parseUUIDKey decodes a UUID-shaped string into its 16 bytes.
func parseUUIDKey[S string | []byte](s S) (idKey, bool) {
	var k idKey
	if len(s) != uuidLen {
		return k, false
	}
	j := 0
	for i := 0; i < uuidLen; i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return k, false
			}
			continue
		}
		n := hexVal(s[i])
		if n < 0 {
			return k, false
		}
		if j%2 == 0 {
			k[j/2] = byte(n << 4)
		} else {
			k[j/2] |= byte(n)
		}
		j++
	}
	return k, true
}

func (k idKey) String() string {
	var s [uuidLen]byte
	j := 0
	for i, c := range k {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j], s[j+1] = hexDigits[c>>4], hexDigits[c&0xf]
		j += 2
	}
	return string(s[:])
}

// Per-id state: flags and a delivery count in one word.
const (
	trAcked    = 1 << 31 // some request carrying it was answered 2xx
	trCountMax = 1<<31 - 1
)

const trackShards = 64

// tracker follows every event id a replay sends: answered ok, and how many
// times the subscriber saw it. Safe for concurrent use.
type tracker struct {
	shards [trackShards]struct {
		mu sync.Mutex
		m  map[idKey]uint32
		_  [40]byte
	}
	acked     atomic.Int64 // distinct ids answered ok
	delivered atomic.Int64 // distinct answered-ok ids delivered at least once
}

func newTracker() *tracker {
	t := &tracker{}
	for i := range t.shards {
		t.shards[i].m = make(map[idKey]uint32)
	}
	return t
}

func (t *tracker) shard(k *idKey) int { return int(k[15]^k[7]) % trackShards }

// sent registers ids about to be sent (before the request, so that a
// delivery that beats the answer is still recognised).
func (t *tracker) sent(keys []idKey) {
	for i := range keys {
		s := &t.shards[t.shard(&keys[i])]
		s.mu.Lock()
		if _, ok := s.m[keys[i]]; !ok {
			s.m[keys[i]] = 0
		}
		s.mu.Unlock()
	}
}

// ack marks ids whose request was answered 2xx.
func (t *tracker) ack(keys []idKey) {
	for i := range keys {
		s := &t.shards[t.shard(&keys[i])]
		s.mu.Lock()
		v := s.m[keys[i]]
		if v&trAcked == 0 {
			t.acked.Add(1)
			if v > 0 {
				t.delivered.Add(1)
			}
			s.m[keys[i]] = v | trAcked
		}
		s.mu.Unlock()
	}
}

// deliver counts one delivery of k; false when k was never sent.
func (t *tracker) deliver(k idKey) bool {
	s := &t.shards[t.shard(&k)]
	s.mu.Lock()
	v, ok := s.m[k]
	if ok {
		if v&trAcked != 0 && v&trCountMax == 0 {
			t.delivered.Add(1)
		}
		if v&trCountMax < trCountMax {
			s.m[k] = v + 1
		}
	}
	s.mu.Unlock()
	return ok
}

// complete reports whether every id answered ok has been delivered.
func (t *tracker) complete() bool { return t.delivered.Load() >= t.acked.Load() }

// trackTotals is the final accounting of a tracker.
type trackTotals struct {
	distinct, acked, delivered uint64
	lost                       uint64 // acked, never delivered
	duplicates                 uint64 // deliveries beyond the first
	notAcked                   uint64 // delivered although never answered ok
	lostIDs, dupIDs            []string
}

func (t *tracker) totals(maxIDs int) trackTotals {
	var r trackTotals
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for k, v := range s.m {
			r.distinct++
			n := uint64(v & trCountMax)
			acked := v&trAcked != 0
			if acked {
				r.acked++
			}
			if n > 0 {
				r.delivered++
			}
			if acked && n == 0 {
				r.lost++
				if len(r.lostIDs) < maxIDs {
					r.lostIDs = append(r.lostIDs, k.String())
				}
			}
			if n > 1 {
				r.duplicates += n - 1
				if len(r.dupIDs) < maxIDs {
					r.dupIDs = append(r.dupIDs, k.String())
				}
			}
			if !acked && n > 0 {
				r.notAcked++
			}
		}
		s.mu.Unlock()
	}
	return r
}
