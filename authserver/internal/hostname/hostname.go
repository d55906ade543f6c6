// Package hostname says how a host name should be shown to a person who must judge it: in its ASCII (punycode)
// form, which cannot imitate another name, with its Unicode form alongside when it has one, and whether a label
// mixes writing systems (the Cyrillic "а" in "pаypal.com"), the usual way to imitate a name in Unicode. It also says
// when two spellings name one host (Canonical), for the lists of hosts a decision compares against.
package hostname

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/net/idna"
)

// Display is what a consent page shows of a host.
type Display struct {
	ASCII   string   // the host as DNS knows it: ASCII, international labels as xn--…; always shown
	Unicode string   // the international form when it differs from ASCII, else ""
	Mixed   bool     // a label mixes writing systems
	Scripts []string // the writing systems of the mixing labels, e.g. ["Cyrillic", "Latin"]
}

// Of describes host (a name or an address, with or without a port).
func Of(host string) Display {
	name, port := host, ""
	if h, p, err := net.SplitHostPort(host); err == nil {
		name, port = h, p
	}
	if net.ParseIP(strings.Trim(name, "[]")) != nil {
		return Display{ASCII: host}
	}
	lower := strings.ToLower(name)
	ascii, err := idna.Lookup.ToASCII(lower)
	if err != nil {
		// Not a valid international name: show it escaped, so nothing in it renders as a look-alike.
		ascii = escapeNonASCII(lower)
	}
	uni, err := idna.Display.ToUnicode(ascii)
	if err != nil {
		uni = ascii
	}
	d := Display{ASCII: withPort(ascii, port)}
	if uni != ascii {
		d.Unicode = withPort(uni, port)
	}
	for _, label := range strings.Split(uni, ".") {
		if scripts := scriptsOf(label); len(scripts) > 1 {
			d.Mixed = true
			d.Scripts = merge(d.Scripts, scripts)
		}
	}
	return d
}

// Canonical is the one spelling of a host (a name or an IP address, without port) that all its spellings share, for
// comparing hosts: an international name in its ASCII form (UTS 46 as the HTTP client and resolver look it up, so
// the full-width "ｌｏｃａｌｈｏｓｔ" is "localhost" and "bücher.example" is "xn--bcher-kva.example"), in lower case, without
// the trailing dot of a fully qualified name ("localhost." is "localhost"); an IP address in its standard form. It
// fails for a name that cannot be looked up as an international name; a caller comparing hosts should then refuse.
func Canonical(host string) (string, error) {
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if a, err := netip.ParseAddr(h); err == nil {
		return a.String(), nil
	}
	if !isASCII(h) {
		// Only non-ASCII names go through UTS 46, as in net/http: an ASCII name is looked up as it is, and rules it
		// does not need (no "_") would refuse names that work.
		ascii, err := idna.Lookup.ToASCII(h)
		if err != nil {
			return "", fmt.Errorf("host %q is not a valid international name: %w", host, err)
		}
		h = ascii
	}
	h = strings.TrimRight(strings.ToLower(h), ".")
	if h == "" {
		return "", fmt.Errorf("host %q is empty", host)
	}
	return h, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func withPort(h, port string) string {
	if port == "" {
		return h
	}
	return net.JoinHostPort(h, port)
}

func escapeNonASCII(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x80 {
			b.WriteRune(r)
		} else {
			b.WriteString(`\u{` + strings.ToUpper(strconv.FormatInt(int64(r), 16)) + "}")
		}
	}
	return b.String()
}

// scripts checked for mixing: the ones look-alike attacks draw from, and the common scripts of host names.
var scripts = []struct {
	name  string
	table *unicode.RangeTable
}{
	{"Latin", unicode.Latin}, {"Cyrillic", unicode.Cyrillic}, {"Greek", unicode.Greek}, {"Armenian", unicode.Armenian},
	{"Hebrew", unicode.Hebrew}, {"Arabic", unicode.Arabic}, {"Georgian", unicode.Georgian}, {"Cherokee", unicode.Cherokee},
	{"Han", unicode.Han}, {"Hiragana", unicode.Hiragana}, {"Katakana", unicode.Katakana}, {"Hangul", unicode.Hangul},
	{"Thai", unicode.Thai}, {"Devanagari", unicode.Devanagari},
}

// scriptsOf lists the writing systems of a label's letters when they mix (digits, hyphens and other common
// characters belong to none), else nil. Chinese, Japanese and Korean names combine their scripts with each other
// and with Latin: those mixes are normal.
func scriptsOf(label string) []string {
	var found []string
	for _, r := range label {
		if r < 0x80 && !unicode.IsLetter(r) {
			continue
		}
		for _, s := range scripts {
			if unicode.Is(s.table, r) {
				found = merge(found, []string{s.name})
				break
			}
		}
	}
	if len(found) < 2 || allIn(found, "Latin", "Han", "Hiragana", "Katakana", "Hangul") {
		return nil
	}
	return found
}

func merge(a, b []string) []string {
	for _, s := range b {
		if !has(a, s) {
			a = append(a, s)
		}
	}
	return a
}

func has(list []string, wanted ...string) bool {
	for _, s := range list {
		for _, w := range wanted {
			if s == w {
				return true
			}
		}
	}
	return false
}

func allIn(list []string, allowed ...string) bool {
	for _, s := range list {
		if !has(allowed, s) {
			return false
		}
	}
	return true
}
