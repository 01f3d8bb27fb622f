// Package jimbotpb holds the Protocol Buffers of JimBot (package jimbot) and
// the Go code generated from them: the event envelope, the EventBus service
// and the ResourceCoordinator service. Regenerate with `make proto`; never
// edit the .pb.go files by hand.
//
// The messages of balatro_events.proto also have SizeVT and
// MarshalToSizedBufferVT methods (balatro_events_vtproto.pb.go, from
// protoc-gen-go-vtproto, corrected by proto/internal/vtfix): the encoder
// that grpcout's codec uses for every event it sends. They give the
// library's encoding, without its reflection.
//
// Messages are plain generated structs: a value shared between goroutines
// must not be changed after it is published.
package jimbotpb
