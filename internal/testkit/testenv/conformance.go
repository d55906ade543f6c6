package testenv

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Conformance suites in testdata/node: the released one and the prerelease that knows protocol version 2026-07-28
// (`--requirements 2026-07-28`, `--requirements 2025-11-25`).
const (
	ConformanceLatest = "@modelcontextprotocol/conformance" // 0.1.16: the 2025-11-25 server scenarios
	ConformanceAlpha  = "conformance-alpha"                 // 0.2.0-alpha.12
)

// ConformanceResult is one run of a conformance suite's server scenarios.
type ConformanceResult struct {
	Summary string          // the suite's summary, for failure messages
	Passed  map[string]bool // by scenario: every check passed
	Err     error           // the suite's exit status: nil when every required scenario passed
}

var scenarioLine = regexp.MustCompile(`(?m)^([✓✗]) (\S+): \d+ passed, \d+ failed`)

// RunConformance runs a suite's server scenarios against url. A non-empty bearer is added to every request the
// suite makes (it cannot send one itself), through testdata/node/bearer-preload.mjs.
func RunConformance(t testing.TB, suite, url, bearer string, args ...string) ConformanceResult {
	t.Helper()
	node := NodeBin(t)
	var cmdArgs []string
	if bearer != "" {
		cmdArgs = append(cmdArgs, "--import", filepath.Join(RepoRoot(t), "testdata", "node", "bearer-preload.mjs"))
	}
	cmdArgs = append(cmdArgs, filepath.Join(NodeModules(t), suite, "dist", "index.js"), "server", "--url", url, "-o", t.TempDir())
	cmd := exec.Command(node, append(cmdArgs, args...)...)
	if bearer != "" {
		cmd.Env = append(cmd.Environ(), "MCP_BEARER_TOKEN="+bearer)
	}
	out, err := cmd.CombinedOutput()
	r := ConformanceResult{Summary: string(out), Passed: map[string]bool{}, Err: err}
	if i := strings.Index(r.Summary, "=== SUMMARY ==="); i >= 0 {
		r.Summary = r.Summary[i:]
	}
	for _, m := range scenarioLine.FindAllStringSubmatch(r.Summary, -1) {
		r.Passed[m[2]] = m[1] == "✓"
	}
	return r
}

// Required2026 are the server scenarios that conformance to protocol version 2026-07-28 requires (the suite's
// frozen requirements/2026-07-28.yaml): 37 in all.
var Required2026 = []string{
	"server-stateless", "completion-complete", "tools-list", "tools-call-simple-text", "tools-call-image",
	"tools-call-audio", "tools-call-embedded-resource", "tools-call-mixed-content", "tools-call-error",
	"tools-call-with-progress", "server-sse-multiple-streams", "resources-list", "resources-read-text",
	"resources-read-binary", "resources-templates-read", "sep-2164-resource-not-found", "prompts-list",
	"prompts-get-simple", "prompts-get-with-args", "prompts-get-embedded-resource", "prompts-get-with-image",
	"dns-rebinding-protection", "caching", "input-required-result-basic-elicitation",
	"input-required-result-basic-sampling", "input-required-result-basic-list-roots",
	"input-required-result-request-state", "input-required-result-multiple-input-requests",
	"input-required-result-multi-round", "input-required-result-missing-input-response",
	"input-required-result-non-tool-request", "input-required-result-result-type",
	"input-required-result-unsupported-methods", "input-required-result-tampered-state",
	"input-required-result-capability-check", "input-required-result-ignore-extra-params",
	"input-required-result-validate-input",
}

// Failed lists the scenarios of names that did not pass (or did not run).
func (r ConformanceResult) Failed(names []string) []string {
	var failed []string
	for _, n := range names {
		if !r.Passed[n] {
			failed = append(failed, n)
		}
	}
	return failed
}
