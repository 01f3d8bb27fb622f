// Command vtfix corrects two departures from the protobuf encoding in the
// code that protoc-gen-go-vtproto generates, in place; `make proto` runs it
// on every *_vtproto.pb.go file it writes.
//
//  1. A float or double field holding -0.0 must be written (proto3 omits
//     only +0; the Go, C++ and Java libraries compare the bits), but the
//     generated code tests `m.X != 0`, which drops -0.0. vtfix tests the
//     bits instead, in the marshal and the size function of the message.
//  2. A oneof member that holds a nil message is written as an empty
//     message (tag, length 0), but its size is counted as 3 bytes whatever
//     the tag's length: one too many for field numbers 1-15.
//
// grpcout's TestCodecMatchesProto fails when either comes back (a new
// generator version, a new field).
package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

var (
	// A float field in a marshal function: `if m.X != 0 {`, then its fixed
	// 8 or 4 bytes from its bits.
	marshalFloat = regexp.MustCompile(`if m\.(\w+) != 0 \{\n\t+i -= [48]\n\t+binary\.LittleEndian\.PutUint(64|32)\(dAtA\[i:\], uint(?:64|32)\(math\.Float(?:64|32)bits`)
	// The size of a oneof member with a one-byte tag holding nil.
	nilMember = regexp.MustCompile(`(n \+= 1 \+ l \+ protohelpers\.SizeOfVarint\(uint64\(l\)\)\n\t\} else \{\n\t\tn \+= )3\n`)
	funcName  = regexp.MustCompile(`^func \(m \*(\w+)\) (\w+)\(`)
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: vtfix FILE_vtproto.pb.go...")
		os.Exit(2)
	}
	for _, name := range os.Args[1:] {
		if err := fixFile(name); err != nil {
			fmt.Fprintln(os.Stderr, "vtfix:", err)
			os.Exit(1)
		}
	}
}

func fixFile(name string) error {
	src, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	out, err := fix(string(src))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return os.WriteFile(name, []byte(out), 0o644)
}

// fix returns src corrected; it fails when a float field found in a marshal
// function has no test to correct in the message's size function.
func fix(src string) (string, error) {
	funcs := strings.SplitAfter(src, "\n}\n")
	// Pass 1: the float fields of each message, from its marshal function.
	floats := map[string]map[string]string{} // message -> field -> "64" or "32"
	for i, f := range funcs {
		msg, fn := names(f)
		if fn != "MarshalToSizedBufferVT" {
			continue
		}
		for _, m := range marshalFloat.FindAllStringSubmatch(f, -1) {
			if floats[msg] == nil {
				floats[msg] = map[string]string{}
			}
			floats[msg][m[1]] = m[2]
		}
		funcs[i] = testBits(f, floats[msg])
	}
	// Pass 2: the size functions.
	for i, f := range funcs {
		msg, fn := names(f)
		if fn != "SizeVT" {
			continue
		}
		for field, bits := range floats[msg] {
			if !strings.Contains(f, "if m."+field+" != 0 {") {
				return "", fmt.Errorf("%s.SizeVT: no test of float field %s (bits %s) to correct", msg, field, bits)
			}
		}
		f = testBits(f, floats[msg])
		funcs[i] = nilMember.ReplaceAllString(f, "${1}2\n")
	}
	return strings.Join(funcs, ""), nil
}

// names returns the receiver's type and the function's name of a function's
// source (the text before it included).
func names(f string) (msg, fn string) {
	i := strings.Index("\n"+f, "\nfunc ")
	if i < 0 {
		return "", ""
	}
	m := funcName.FindStringSubmatch(f[i:])
	if m == nil {
		return "", ""
	}
	return m[1], m[2]
}

// testBits rewrites `if m.X != 0 {` of each float field as a test of its
// bits.
func testBits(f string, fields map[string]string) string {
	for field, bits := range fields {
		f = strings.ReplaceAll(f, "if m."+field+" != 0 {", "if math.Float"+bits+"bits(m."+field+") != 0 {")
	}
	return f
}
