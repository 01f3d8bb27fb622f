package loadtest

import (
	"cmp"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"slices"
)

// Key orders of the generated bodies (GenOptions.KeyOrder).
const (
	// KeyOrderHash: every object's keys in the session's own hash order, as
	// the mod's Lua tables come out of its JSON encoder (Lua hash order:
	// the same for every object with the same keys within one game process,
	// different between processes; balatromcp-client.md Q16).
	KeyOrderHash = "hash"
	// KeyOrderCaptures: the keys in the order of the reference captures,
	// the same in every session.
	KeyOrderCaptures = "captures"
)

// hashOrder rewrites the JSON value b with the members of every object
// sorted by a hash of their key and salt, so that objects with the same keys
// get the same order and another salt another one. Values are copied
// byte-exact (the mod's nan and inf tokens, invalid UTF-8 and all). b must be
// compact, as the generator writes it.
func hashOrder(b []byte, salt uint64) ([]byte, error) {
	o := orderer{b: b, salt: salt}
	out, end, err := o.value(nil, 0)
	if err == nil && end != len(b) {
		err = errTrailing
	}
	return out, err
}

var (
	errTrailing = errors.New("loadtest: bytes after the JSON value")
	errShape    = errors.New("loadtest: not compact JSON")
)

// orderer is the walk of one body by hashOrder.
type orderer struct {
	b    []byte
	salt uint64
}

// value appends the value at b[i], reordered, to dst and returns its end.
func (o *orderer) value(dst []byte, i int) ([]byte, int, error) {
	b := o.b
	if i >= len(b) {
		return dst, i, errShape
	}
	switch b[i] {
	case '{':
		return o.object(dst, i)
	case '[':
		dst = append(dst, '[')
		i++
		if i < len(b) && b[i] == ']' {
			return append(dst, ']'), i + 1, nil
		}
		for {
			var err error
			if dst, i, err = o.value(dst, i); err != nil {
				return dst, i, err
			}
			if i >= len(b) {
				return dst, i, errShape
			}
			dst = append(dst, b[i])
			switch b[i] {
			case ',':
				i++
			case ']':
				return dst, i + 1, nil
			default:
				return dst, i, errShape
			}
		}
	case '"':
		end, err := stringEnd(b, i)
		return append(dst, b[i:end]...), end, err
	}
	// A number, a literal, or one of the mod's non-finite tokens.
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] > ' ' {
		j++
	}
	if j == i {
		return dst, i, errShape
	}
	return append(dst, b[i:j]...), j, nil
}

// object is value for the object at b[i].
func (o *orderer) object(dst []byte, i int) ([]byte, int, error) {
	b := o.b
	type member struct {
		rank     uint64
		key, val []byte // the key with its quotes, the value reordered
	}
	var ms []member
	i++
	if i < len(b) && b[i] == '}' {
		return append(dst, "{}"...), i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return dst, i, errShape
		}
		ke, err := stringEnd(b, i)
		if err != nil {
			return dst, i, err
		}
		if ke >= len(b) || b[ke] != ':' {
			return dst, ke, errShape
		}
		key := b[i:ke]
		var val []byte
		if val, i, err = o.value(nil, ke+1); err != nil {
			return dst, i, err
		}
		ms = append(ms, member{o.rank(key), key, val})
		if i >= len(b) || (b[i] != ',' && b[i] != '}') {
			return dst, i, errShape
		}
		if b[i] == '}' {
			break
		}
		i++
	}
	slices.SortStableFunc(ms, func(x, y member) int { return cmp.Compare(x.rank, y.rank) })
	dst = append(dst, '{')
	for n, m := range ms {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, m.key...)
		dst = append(dst, ':')
		dst = append(dst, m.val...)
	}
	return append(dst, '}'), i + 1, nil
}

// rank is the place of key (with its quotes) in the salt's order.
func (o *orderer) rank(key []byte) uint64 {
	h := fnv.New64a()
	var s [8]byte
	binary.LittleEndian.PutUint64(s[:], o.salt)
	h.Write(s[:])
	h.Write(key)
	return h.Sum64()
}

// stringEnd returns the end of the string that opens at b[i] (after its
// closing quote).
func stringEnd(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return len(b), errShape
}
