package testenv

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// resourceCase is one row of testdata/canonical-resources.json, the table that pins how the plugin and the
// authserver make a resource URL canonical.
type resourceCase struct {
	In   string `json:"in"`
	Want string `json:"want"` // the canonical URL; "" when refused
	// Plugin and Authserver, when set, are that side's answer where it differs from the other's today.
	Plugin     *string `json:"plugin"`
	Authserver *string `json:"authserver"`
	Why        string  `json:"why"`
}

// CheckCanonicalResources holds canonical, the plugin's ("plugin") or the authserver's ("authserver") function, to
// the shared table testdata/canonical-resources.json.
func CheckCanonicalResources(t *testing.T, side string, canonical func(string) (string, error)) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(RepoRoot(t), "testdata", "canonical-resources.json"))
	if err != nil {
		t.Fatalf("read the resource table: %v", err)
	}
	var table struct{ Cases []resourceCase }
	if err := json.Unmarshal(b, &table); err != nil {
		t.Fatalf("testdata/canonical-resources.json: %v", err)
	}
	if len(table.Cases) == 0 {
		t.Fatal("testdata/canonical-resources.json has no cases")
	}
	for _, c := range table.Cases {
		want := c.Want
		if s := map[string]*string{"plugin": c.Plugin, "authserver": c.Authserver}[side]; s != nil {
			want = *s
		}
		got, err := canonical(c.In)
		switch {
		case want == "" && err == nil:
			t.Errorf("%s: %q gives %q, want a refusal (%s)", side, c.In, got, c.Why)
		case want != "" && err != nil:
			t.Errorf("%s: %q is refused (%v), want %q (%s)", side, c.In, err, want, c.Why)
		case got != want:
			t.Errorf("%s: %q gives %q, want %q (%s)", side, c.In, got, want, c.Why)
		}
	}
}
