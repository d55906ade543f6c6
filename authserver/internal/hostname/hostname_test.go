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

// Every spelling of one host compares equal: a trailing dot, case, international forms; a name that cannot be looked
// up is an error, never a string that would slip past a list.
func TestCanonical(t *testing.T) {
	for in, want := range map[string]string{
		"localhost": "localhost", "localhost.": "localhost", "LocalHost.": "localhost", "localhost..": "localhost",
		"ｌｏｃａｌｈｏｓｔ": "localhost", "ＬＯＣＡＬＨＯＳＴ。": "localhost",
		"bücher.example": "xn--bcher-kva.example", "BÜCHER.example.": "xn--bcher-kva.example",
		"xn--bcher-kva.example": "xn--bcher-kva.example", "a_b.example": "a_b.example",
		"127.0.0.1": "127.0.0.1", "::1": "::1", "[::1]": "::1", "[0:0::1]": "::1", "2001:DB8::1": "2001:db8::1",
	} {
		got, err := Canonical(in)
		assert.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", ".", "exa mple.ü", "\u0000ü"} {
		_, err := Canonical(bad)
		assert.Error(t, err, bad)
	}
}
