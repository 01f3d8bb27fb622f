//go:build !race

package route

import (
	"testing"

	"github.com/stretchr/testify/require"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

func TestAllocsRouting(t *testing.T) {
	s, err := Compile("game.*.*", "system.>")
	require.NoError(t, err)
	n := testing.AllocsPerRun(1000, func() {
		typ, ok := ParseType("connection_test", "")
		if !ok {
			t.Fatal("type")
		}
		id, _ := TopicOf(typ, "")
		_ = s.Has(id)
		_, _ = TopicOf(jimbotpb.EventType_EVENT_TYPE_SCORING, "score_update")
		_ = Match("game.*.>", "game.state.update")
	})
	require.Zero(t, n)
}
