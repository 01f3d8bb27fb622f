package jetstream

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jimbot/jimbus/grpcout"
	"github.com/jimbot/jimbus/ingest"
	jimbotpb "github.com/jimbot/jimbus/proto"
)

func checkCommand(cmd *jimbotpb.Command) error {
	_, err := ingest.CommandLine(cmd.GetType(), cmd.GetLine(), cmd.GetPayloadJson())
	return err
}

// TestRelayCommands: two instances on one embedded server that also
// listens (the second joins it by URL); a command sent over gRPC to the
// first reaches the command queue of both; a bad one is refused at once.
func TestRelayCommands(t *testing.T) {
	emb, err := NewEmbedded(EmbeddedOptions{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, emb.Start(ctx))
	t.Cleanup(func() { _ = emb.Stop(context.Background()) })
	require.NotEmpty(t, emb.ClientURL())

	qa, qb := ingest.NewCommands(16), ingest.NewCommands(16)
	a, err := New(Options{Embedded: emb, Logger: testLogger()})
	require.NoError(t, err)
	a.RelayCommands(qa, checkCommand)
	b, err := New(Options{URL: emb.ClientURL(), Logger: testLogger()})
	require.NoError(t, err)
	b.RelayCommands(qb, checkCommand)
	require.NoError(t, a.Start(ctx))
	require.NoError(t, b.Start(ctx))
	defer func() {
		require.NoError(t, b.Stop(ctx))
		require.NoError(t, a.Stop(ctx))
	}()

	svc := grpcout.NewServiceWith(a, nil, a)
	_, err = svc.SendCommand(ctx, &jimbotpb.Command{Type: "select_card", PayloadJson: []byte(`{"index":2}`)})
	require.NoError(t, err)
	_, err = svc.SendCommand(ctx, &jimbotpb.Command{Line: "play_hand"})
	require.NoError(t, err)
	_, err = svc.SendCommand(ctx, &jimbotpb.Command{})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)

	for _, q := range []*ingest.Commands{qa, qb} {
		require.Eventually(t, func() bool { return q.Len() == 2 }, 5*time.Second, 5*time.Millisecond)
		require.Equal(t, "select_card:2\nplay_hand\n", string(q.Drain(nil)))
	}

	// Without the relay, SendCommand is not offered by the bus.
	require.Equal(t, codes.Unimplemented, status.Code((&Bus{}).Enqueue(&jimbotpb.Command{Line: "x"})))
}
