// Package flagenv is how every command of the gateway reads its settings: each flag can also be set by the
// environment variable <PREFIX>_<FLAG> (upper case, - as _), a flag on the command line winning; and a list setting
// is one comma-separated value.
package flagenv

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// Name is the environment variable that sets the flag: NAME("STREAMPROXY", "metrics-listen") is
// STREAMPROXY_METRICS_LISTEN.
func Name(prefix, flagName string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Apply sets every flag of fs that the command line did not set (call it after fs.Parse) from its environment
// variable, or, when that is unset, from the variable aliases names for the flag (names kept from older
// deployments; may be nil). The error names the variable.
func Apply(fs *flag.FlagSet, prefix string, aliases map[string]string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		name := Name(prefix, f.Name)
		v, ok := os.LookupEnv(name)
		if !ok && aliases[f.Name] != "" {
			name = aliases[f.Name]
			v, ok = os.LookupEnv(name)
		}
		if ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s: %w", name, e)
			}
		}
	})
	return err
}

// Split returns the items of a comma-separated list, trimmed, without empty ones.
func Split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// List is a flag.Value that collects the items of a comma-separated list; a repeated flag adds to it.
type List []string

func (l *List) String() string { return strings.Join(*l, ",") }

// Set adds the items of v.
func (l *List) Set(v string) error {
	*l = append(*l, Split(v)...)
	return nil
}
