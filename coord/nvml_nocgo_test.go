//go:build !cgo

package coord

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// Built without cgo (the go command's default where it finds no C
// compiler), the coordinator has no NVML: it uses the configured inventory
// and says why, or fails to start when NVML is required.
func TestNoCgoFallsBack(t *testing.T) {
	o := testOptions(newFakeClock())
	o.DisableNVML = false
	s := startServer(t, o)
	st := statusOf(t, s, gpuR)
	require.Equal(t, "fallback: "+errNoCgo.Error(), st.GetSource())
	require.EqualValues(t, 24000, st.GetTotalCapacity())
	r := mustGrant(t, s, newReq("trainer", gpuR, 1024))
	require.True(t, release(t, s, r.GetToken(), "trainer").GetSuccess())

	o.RequireNVML = true
	s2, err := New(o)
	require.NoError(t, err)
	require.ErrorContains(t, s2.Start(context.Background()), "NVML is required: this binary was built without cgo")
	require.NoError(t, s2.Stop(context.Background()))
}
