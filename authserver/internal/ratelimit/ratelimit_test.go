package ratelimit

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestAddressKeyIPv6On64(t *testing.T) {
	assert.Equal(t, "2001:db8:1:2::/64", AddressKey("2001:db8:1:2::1"))
	assert.Equal(t, AddressKey("2001:db8:1:2::1"), AddressKey("2001:db8:1:2:ffff:ffff:ffff:ffff"), "one /64, one key")
	assert.NotEqual(t, AddressKey("2001:db8:1:2::1"), AddressKey("2001:db8:1:3::1"))
	assert.Equal(t, "192.0.2.7", AddressKey("192.0.2.7"))
	assert.Equal(t, "192.0.2.7", AddressKey("::ffff:192.0.2.7"), "IPv4-mapped counts as IPv4")
	assert.Equal(t, "fe80::/64", AddressKey("fe80::1%eth0"))
	assert.Equal(t, "not-an-ip", AddressKey("not-an-ip"))
}

func TestLimiterLimitsPerKey(t *testing.T) {
	l := New(1, 2)
	assert.True(t, l.Allow("a"))
	assert.True(t, l.Allow("a"))
	assert.False(t, l.Allow("a"), "burst of 2 used up")
	assert.True(t, l.Allow("b"), "another key has its own bucket")
	assert.True(t, New(0, 0).Allow("x"), "0 per minute: unlimited")
}

// A flood of new keys (addresses from a large IPv6 range, say) cannot grow the limiter without bound, and the
// callers that are being limited stay limited while there is room.
func TestLimiterMapIsBounded(t *testing.T) {
	l := &Limiter{PerMinute: 1, Burst: 1, MaxKeys: 100}
	for i := range 10000 {
		l.Allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256))
		assert.LessOrEqual(t, l.Len(), 100)
	}
	assert.LessOrEqual(t, l.Len(), 100)

	// Refilled buckets are dropped before anything else.
	r := &Limiter{PerMinute: 6000, Burst: 1, MaxKeys: 10}
	for i := range 9 {
		r.Allow(fmt.Sprint("idle-", i))
	}
	for range 100 {
		r.Allow("new") // refills quickly at 100/s
	}
	assert.LessOrEqual(t, r.Len(), 10)
}
