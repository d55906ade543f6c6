package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// The results table lives between these two lines of docs/reliability.md.
const (
	tableBegin = "<!-- fault table: written by `go tool task faults -- -faults.update-doc`; do not edit by hand -->"
	tableEnd   = "<!-- end of fault table -->"
)

// writeTable puts this run's rows into docs/reliability.md between the markers.
func writeTable() error {
	root, err := testenv.Root()
	if err != nil {
		return err
	}
	path := filepath.Join(root, "docs", "reliability.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	before, rest, ok := strings.Cut(string(doc), tableBegin)
	if !ok {
		return fmt.Errorf("%s has no line %q", path, tableBegin)
	}
	_, after, ok := strings.Cut(rest, tableEnd)
	if !ok {
		return fmt.Errorf("%s has no line %q", path, tableEnd)
	}
	mode := "short"
	if *long {
		mode = "long (-faults.long)"
	}
	var b strings.Builder
	b0, _ := os.ReadFile("/proc/loadavg")
	load := "unknown"
	if f := strings.Fields(string(b0)); len(f) >= 3 {
		load = strings.Join(f[:3], " ")
	}
	fmt.Fprintf(&b, "%s\n\nRun of %s, %s mode, %d CPUs, load average %s at its end. Recovery: from the fault's start "+
		"until every kind of client work that failed succeeded again, in an operation started after its last failure "+
		"(so it includes one run of the slowest client).\n\n", tableBegin, time.Now().UTC().Format("2006-01-02"), mode,
		runtime.NumCPU(), load)
	b.WriteString("| store | fault | what clients saw | recovery | revoked tokens admitted | data lost |\n" +
		"| --- | --- | --- | --- | --- | --- |\n")
	results.Lock()
	for _, r := range results.rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.Store, r.Fault, cell(r.Saw), r.Recovery, r.Revoked, cell(r.Lost))
	}
	results.Unlock()
	b.WriteString("\n" + tableEnd)
	return os.WriteFile(path, []byte(before+b.String()+after), 0o644)
}

// cell keeps a table cell on one line and its pipes literal.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}
