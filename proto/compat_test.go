package jimbotpb_test

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/jimbot/jimbus/proto"
)

var update = flag.Bool("update", false, "add new fields and values to testdata/wire_baseline.txt")

const baselinePath = "testdata/wire_baseline.txt"

// TestWireCompat keeps the schema wire-compatible for existing subscribers:
// every field, enum value, service and method in the committed baseline must
// still exist with the same number, type and cardinality. Additions are
// fine; run `go test ./proto -run TestWireCompat -update` to record them.
func TestWireCompat(t *testing.T) {
	current := describe(t)
	raw, err := os.ReadFile(baselinePath)
	require.NoError(t, err, "the baseline is committed; run with -update to create it")
	var baseline []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			baseline = append(baseline, line)
		}
	}
	have := map[string]bool{}
	for _, l := range current {
		have[l] = true
	}
	var broken []string
	for _, l := range baseline {
		if !have[l] {
			broken = append(broken, l)
		}
	}
	require.Empty(t, broken, "wire-incompatible change: these baseline entries were removed, renumbered or retyped")

	if *update {
		merged := slices.Clone(baseline)
		known := map[string]bool{}
		for _, l := range baseline {
			known[l] = true
		}
		for _, l := range current {
			if !known[l] {
				merged = append(merged, l)
			}
		}
		slices.Sort(merged)
		out := "# Wire baseline of package jimbot: entries may be added, never changed or removed.\n" +
			strings.Join(merged, "\n") + "\n"
		require.NoError(t, os.WriteFile(baselinePath, []byte(out), 0o644))
	}
}

// describe lists the wire-relevant facts of every jimbot descriptor.
func describe(t *testing.T) []string {
	var out []string
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if fd.Package() != "jimbot" {
			return true
		}
		var msgs func(protoreflect.MessageDescriptors)
		enums := func(es protoreflect.EnumDescriptors) {
			for i := 0; i < es.Len(); i++ {
				e := es.Get(i)
				for j := 0; j < e.Values().Len(); j++ {
					v := e.Values().Get(j)
					out = append(out, fmt.Sprintf("enum %s %s = %d", e.FullName(), v.Name(), v.Number()))
				}
			}
		}
		msgs = func(ms protoreflect.MessageDescriptors) {
			for i := 0; i < ms.Len(); i++ {
				m := ms.Get(i)
				if m.IsMapEntry() {
					continue
				}
				for j := 0; j < m.Fields().Len(); j++ {
					out = append(out, "field "+fieldLine(m.Fields().Get(j)))
				}
				enums(m.Enums())
				msgs(m.Messages())
			}
		}
		enums(fd.Enums())
		msgs(fd.Messages())
		for i := 0; i < fd.Services().Len(); i++ {
			s := fd.Services().Get(i)
			for j := 0; j < s.Methods().Len(); j++ {
				m := s.Methods().Get(j)
				out = append(out, fmt.Sprintf("rpc %s/%s(%s%s) returns (%s%s)", s.FullName(), m.Name(),
					stream(m.IsStreamingClient()), m.Input().FullName(), stream(m.IsStreamingServer()), m.Output().FullName()))
			}
		}
		return true
	})
	require.NotEmpty(t, out)
	slices.Sort(out)
	return out
}

func fieldLine(f protoreflect.FieldDescriptor) string {
	typ := f.Kind().String()
	switch {
	case f.IsMap():
		typ = fmt.Sprintf("map<%s,%s>", kindName(f.MapKey()), kindName(f.MapValue()))
	case f.Kind() == protoreflect.MessageKind || f.Kind() == protoreflect.EnumKind:
		typ = kindName(f)
	}
	card := "singular"
	if f.IsList() {
		card = "repeated"
	}
	oneof := ""
	if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() {
		oneof = " oneof " + string(o.Name())
	}
	return fmt.Sprintf("%s.%s = %d %s %s%s", f.ContainingMessage().FullName(), f.Name(), f.Number(), card, typ, oneof)
}

func kindName(f protoreflect.FieldDescriptor) string {
	switch f.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return string(f.Message().FullName())
	case protoreflect.EnumKind:
		return string(f.Enum().FullName())
	}
	return f.Kind().String()
}

func stream(b bool) string {
	if b {
		return "stream "
	}
	return ""
}
