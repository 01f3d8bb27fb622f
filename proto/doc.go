// Package jimbotpb holds the Protocol Buffers of JimBot (package jimbot) and
// the Go code generated from them: the event envelope, the EventBus service
// and the ResourceCoordinator service. Regenerate with `make proto`; never
// edit the .pb.go files by hand.
//
// Messages are plain generated structs: a value shared between goroutines
// must not be changed after it is published.
package jimbotpb
