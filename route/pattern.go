package route

import (
	"errors"
	"fmt"
	"strings"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// Limits on patterns, so that a subscription cannot make matching expensive.
const (
	// MaxPatternLen is the longest pattern accepted, in bytes.
	MaxPatternLen = 256
	// MaxPatterns is the most patterns one subscription may list.
	MaxPatterns = 64
)

// ErrBadPattern is wrapped by every pattern error.
var ErrBadPattern = errors.New("route: bad pattern")

// Match reports whether topic matches pattern. A pattern equal to the topic
// matches; otherwise both are split on "."; "*" matches exactly one segment
// (so the segment counts must agree) and ">" as the last segment matches one
// or more segments. Match does not allocate.
func Match(pattern, topic string) bool {
	if pattern == topic {
		return true
	}
	for {
		pseg, prest, pmore := strings.Cut(pattern, ".")
		if pseg == ">" && !pmore {
			return topic != ""
		}
		tseg, trest, tmore := strings.Cut(topic, ".")
		if pseg != "*" && pseg != tseg {
			return false
		}
		if pmore != tmore {
			return false
		}
		if !pmore {
			return true
		}
		pattern, topic = prest, trest
	}
}

// ValidatePattern checks that p is a well-formed pattern: non-empty
// dot-separated segments, "*" and ">" only as whole segments, ">" only last.
func ValidatePattern(p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty", ErrBadPattern)
	}
	if len(p) > MaxPatternLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrBadPattern, MaxPatternLen)
	}
	segs := strings.Split(p, ".")
	for i, s := range segs {
		switch {
		case s == "":
			return fmt.Errorf("%w: %q has an empty segment", ErrBadPattern, p)
		case s == ">" && i != len(segs)-1:
			return fmt.Errorf("%w: %q has '>' before its last segment", ErrBadPattern, p)
		case s != "*" && s != ">" && strings.ContainsAny(s, "*> \t\r\n"):
			return fmt.Errorf("%w: %q mixes a wildcard or space into segment %q", ErrBadPattern, p, s)
		}
	}
	return nil
}

// Set is a set of topics: what a subscription matches, compiled once.
type Set [(255 + 64) / 64]uint64

// Has reports whether id is in the set.
func (s *Set) Has(id TopicID) bool { return s[id>>6]&(1<<(id&63)) != 0 }

// Add puts id into the set.
func (s *Set) Add(id TopicID) { s[id>>6] |= 1 << (id & 63) }

// Covers reports whether every topic of o is in s.
func (s *Set) Covers(o *Set) bool {
	for i := range s {
		if o[i]&^s[i] != 0 {
			return false
		}
	}
	return true
}

// Empty reports whether the set holds no topic.
func (s *Set) Empty() bool {
	for _, w := range s {
		if w != 0 {
			return false
		}
	}
	return true
}

// Compile validates patterns and returns the set of topics that any of them
// matches. No pattern at all means every topic (as ">").
func Compile(patterns ...string) (Set, error) {
	var s Set
	if len(patterns) > MaxPatterns {
		return s, fmt.Errorf("%w: %d patterns, at most %d", ErrBadPattern, len(patterns), MaxPatterns)
	}
	if len(patterns) == 0 {
		patterns = []string{">"}
	}
	for _, p := range patterns {
		if err := ValidatePattern(p); err != nil {
			return s, err
		}
		for i := range table {
			if Match(p, table[i].topic) {
				s.Add(TopicID(i))
			}
		}
	}
	return s, nil
}

// Patterns returns the patterns of a subscription: topic_pattern and
// topic_patterns unioned (none means every topic, as Compile reads it).
func Patterns(req *jimbotpb.SubscribeRequest) []string {
	patterns := req.GetTopicPatterns()
	if p := req.GetTopicPattern(); p != "" {
		patterns = append([]string{p}, patterns...)
	}
	return patterns
}

// ParseView reads a payload view as the command-line tools take it:
// "" or "default" (the server's default), "typed", or "json".
func ParseView(s string) (jimbotpb.PayloadView, error) {
	switch strings.ToLower(s) {
	case "", "default":
		return jimbotpb.PayloadView_PAYLOAD_VIEW_UNSPECIFIED, nil
	case "typed":
		return jimbotpb.PayloadView_PAYLOAD_VIEW_TYPED, nil
	case "json":
		return jimbotpb.PayloadView_PAYLOAD_VIEW_JSON, nil
	}
	return 0, fmt.Errorf("bad payload view %q: want default, typed or json", s)
}
