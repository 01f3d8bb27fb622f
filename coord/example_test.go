package coord_test

import (
	"context"
	"fmt"
	"time"

	"github.com/jimbot/jimbus/coord"
	jimbotpb "github.com/jimbot/jimbus/proto"
)

// A trainer takes the GPU, a second request finds the only time slice busy,
// and the trainer gives the GPU back with its token.
func Example() {
	ctx := context.Background()
	s, err := coord.New(coord.Options{DisableNVML: true, GPUMemoryMB: 24000, MemoryMB: 32768, CPUCores: 16})
	if err != nil {
		panic(err)
	}
	if err := s.Start(ctx); err != nil {
		panic(err)
	}
	defer s.Stop(ctx)

	train, _ := s.RequestResource(ctx, &jimbotpb.ResourceRequest{
		RequestId: "train-1", Component: "trainer", Resource: jimbotpb.ResourceType_RESOURCE_TYPE_GPU,
		Quantity: 4000, Priority: jimbotpb.Priority_PRIORITY_HIGH,
	})
	fmt.Println(train.GetStatus(), train.GetGrantedQuantity(), "MB on device", train.GetDevice())

	eval, _ := s.RequestResource(ctx, &jimbotpb.ResourceRequest{
		RequestId: "eval-1", Component: "evaluator", Resource: jimbotpb.ResourceType_RESOURCE_TYPE_GPU, Quantity: 2000,
	})
	fmt.Println(eval.GetStatus(), eval.GetRetryAfter().AsDuration().Round(time.Minute))

	rel, _ := s.ReleaseResource(ctx, &jimbotpb.ReleaseRequest{Token: train.GetToken(), Component: "trainer"})
	fmt.Println(rel.GetSuccess(), rel.GetMessage())
	rel, _ = s.ReleaseResource(ctx, &jimbotpb.ReleaseRequest{Token: train.GetToken(), Component: "trainer"})
	fmt.Println(rel.GetSuccess())
	// Output:
	// REQUEST_STATUS_GRANTED 4000 MB on device 0
	// REQUEST_STATUS_DENIED 5m0s
	// true released 4000 MB of GPU
	// false
}
