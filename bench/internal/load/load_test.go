package load

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunTotalGivesEachSequenceOnce(t *testing.T) {
	var mu sync.Mutex
	seen := map[int64]int{}
	res, err := Run(context.Background(), Options{Workers: 4, Total: 100}, func(_ context.Context, _ int, seq int64) error {
		mu.Lock()
		seen[seq]++
		mu.Unlock()
		if seq%10 == 0 {
			return errors.New("boom")
		}
		return nil
	})
	require.NoError(t, err)
	assert.Len(t, seen, 100)
	for seq, n := range seen {
		assert.Equal(t, 1, n, "seq %d", seq)
	}
	assert.EqualValues(t, 90, res.Ops)
	assert.EqualValues(t, 10, res.Errors)
	assert.Len(t, res.Latencies, 90)
	assert.EqualError(t, res.FirstErr, "boom")
}

func TestRunNeedsABound(t *testing.T) {
	_, err := Run(context.Background(), Options{Workers: 1}, func(context.Context, int, int64) error { return nil })
	require.Error(t, err)
	_, err = Run(context.Background(), Options{Total: 1}, func(context.Context, int, int64) error { return nil })
	require.Error(t, err)
}
