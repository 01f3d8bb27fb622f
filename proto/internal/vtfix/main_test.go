package main

import (
	"strings"
	"testing"
)

// A marshal and a size function in the shape protoc-gen-go-vtproto writes:
// a double, an int of the same name in another message, and a oneof member
// holding nil.
const generated = `func (m *A) MarshalToSizedBufferVT(dAtA []byte) (int, error) {
	if m.X != 0 {
		i -= 8
		binary.LittleEndian.PutUint64(dAtA[i:], uint64(math.Float64bits(float64(m.X))))
		i--
	}
}
func (m *A) SizeVT() (n int) {
	if m.X != 0 {
		n += 9
	}
}
func (m *B) SizeVT() (n int) {
	if m.X != 0 {
		n += 1 + protohelpers.SizeOfVarint(uint64(m.X))
	}
}
func (m *Event_Heartbeat) SizeVT() (n int) {
	if m.Heartbeat != nil {
		l = m.Heartbeat.SizeVT()
		n += 1 + l + protohelpers.SizeOfVarint(uint64(l))
	} else {
		n += 3
	}
}
func (m *Event_JokersChanged) SizeVT() (n int) {
	if m.JokersChanged != nil {
		l = m.JokersChanged.SizeVT()
		n += 2 + l + protohelpers.SizeOfVarint(uint64(l))
	} else {
		n += 3
	}
}
`

func TestFix(t *testing.T) {
	out, err := fix(generated)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"func (m *A) MarshalToSizedBufferVT(dAtA []byte) (int, error) {\n\tif math.Float64bits(m.X) != 0 {",
		"func (m *A) SizeVT() (n int) {\n\tif math.Float64bits(m.X) != 0 {",
		"func (m *B) SizeVT() (n int) {\n\tif m.X != 0 {", // an int: unchanged
		"SizeOfVarint(uint64(l))\n\t} else {\n\t\tn += 2\n\t}\n}\nfunc (m *Event_JokersChanged)",
		"n += 2 + l + protohelpers.SizeOfVarint(uint64(l))\n\t} else {\n\t\tn += 3\n", // two-byte tag: right
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks\n%s\n\ngot:\n%s", want, out)
		}
	}
	// A float whose size test is not where vtfix expects it: an error, not
	// a silent half fix.
	if _, err := fix(strings.Replace(generated, "if m.X != 0 {\n\t\tn += 9", "if m.X > 0 {\n\t\tn += 9", 1)); err == nil {
		t.Error("no error for a size function vtfix cannot correct")
	}
}
