package hostname

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestOf(t *testing.T) {
	plain := Of("claude.ai")
	assert.Equal(t, Display{ASCII: "claude.ai"}, plain)

	// A Cyrillic "а" in an otherwise Latin name: shown as punycode, and flagged.
	spoof := Of("pаypal.com")
	assert.Equal(t, "xn--pypal-4ve.com", spoof.ASCII)
	assert.Equal(t, "pаypal.com", spoof.Unicode)
	assert.True(t, spoof.Mixed)
	assert.ElementsMatch(t, []string{"Latin", "Cyrillic"}, spoof.Scripts)

	// The same name written in punycode is the same name.
	assert.Equal(t, spoof, Of("xn--pypal-4ve.com"))

	// One script throughout is international, not mixed.
	ru := Of("пример.рф:8443")
	assert.Equal(t, "xn--e1afmkfd.xn--p1ai:8443", ru.ASCII)
	assert.Equal(t, "пример.рф:8443", ru.Unicode)
	assert.False(t, ru.Mixed)
	assert.False(t, Of("日本語.jp").Mixed, "Japanese mixes Han and kana by nature")
	assert.True(t, Of("gооgle.com").Mixed)

	assert.Equal(t, Display{ASCII: "127.0.0.1:3000"}, Of("127.0.0.1:3000"))
	assert.Equal(t, Display{ASCII: "[::1]:3000"}, Of("[::1]:3000"))
	assert.Equal(t, "localhost:3000", Of("LOCALHOST:3000").ASCII)
}
