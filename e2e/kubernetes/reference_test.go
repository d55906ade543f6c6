package kubernetes

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// The values reference in docs/kubernetes.md is generated from values.schema.json and values.yaml: this test fails
// when it is stale, and rewrites it with UPDATE_DOCS=1.
func TestValuesReferenceIsCurrent(t *testing.T) {
	root := testenv.RepoRoot(t)
	chart := filepath.Join(root, "deploy", "helm", "mcp-oauth-gateway")
	var schema node
	b, err := os.ReadFile(filepath.Join(chart, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	var defaults map[string]any
	b, err = os.ReadFile(filepath.Join(chart, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &defaults); err != nil {
		t.Fatal(err)
	}
	var rows strings.Builder
	rows.WriteString("| value | type | default | meaning |\n| --- | --- | --- | --- |\n")
	reference(&rows, schema.Definitions, schema, "", defaults)

	doc := filepath.Join(root, "docs", "kubernetes.md")
	b, err = os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- values reference: begin -->\n", "<!-- values reference: end -->"
	before, rest, ok1 := strings.Cut(string(b), begin)
	_, after, ok2 := strings.Cut(rest, end)
	if !ok1 || !ok2 {
		t.Fatalf("%s has no %q ... %q section", doc, begin, end)
	}
	want := before + begin + rows.String() + end + after
	if want == string(b) {
		return
	}
	if os.Getenv("UPDATE_DOCS") != "" {
		if err := os.WriteFile(doc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("docs/kubernetes.md's values reference is not what values.schema.json says: run `UPDATE_DOCS=1 go test -run TestValuesReferenceIsCurrent ./...` in e2e/kubernetes")
}

// node is the part of JSON Schema the chart's schema uses.
type node struct {
	Type        any             `json:"type"`
	Enum        []any           `json:"enum"`
	Ref         string          `json:"$ref"`
	AllOf       []node          `json:"allOf"`
	AnyOf       []node          `json:"anyOf"`
	Items       *node           `json:"items"`
	Properties  map[string]node `json:"properties"`
	Description string          `json:"description"`
	Definitions map[string]node `json:"definitions"`
	Required    []string        `json:"required"`
}

// resolve follows $ref and the first allOf/anyOf member that has one, keeping the outer description.
func resolve(defs map[string]node, n node) node {
	desc := n.Description
	for {
		switch {
		case n.Ref != "":
			n = defs[strings.TrimPrefix(n.Ref, "#/definitions/")]
		case len(n.AllOf) > 0:
			n = n.AllOf[0]
		case len(n.AnyOf) > 0 && n.Type == nil:
			n = n.AnyOf[len(n.AnyOf)-1]
		default:
			if desc != "" {
				n.Description = desc
			}
			return n
		}
		if n.Description != "" && desc == "" {
			desc = n.Description
		}
	}
}

func typeName(n node) string {
	if len(n.Enum) > 0 {
		var s []string
		for _, e := range n.Enum {
			s = append(s, fmt.Sprintf("`%v`", e))
		}
		return strings.Join(s, ", ")
	}
	switch t := n.Type.(type) {
	case string:
		if t == "array" && n.Items != nil {
			return "list"
		}
		return t
	case []any:
		var s []string
		for _, x := range t {
			s = append(s, fmt.Sprint(x))
		}
		return strings.Join(s, " or ")
	}
	return ""
}

// reference writes one row per value: objects with properties are walked, lists of objects by their items' keys.
func reference(w *strings.Builder, defs map[string]node, n node, path string, def any) {
	n = resolve(defs, n)
	keys := make([]string, 0, len(n.Properties))
	for k := range n.Properties {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "global" {
			continue
		}
		child := resolve(defs, n.Properties[k])
		p := k
		if path != "" {
			p = path + "." + k
		}
		var d any
		if m, ok := def.(map[string]any); ok {
			d = m[k]
		}
		if len(child.Properties) > 0 && typeName(child) == "object" {
			if child.Description != "" {
				fmt.Fprintf(w, "| `%s` | object | | %s |\n", p, child.Description)
			}
			reference(w, defs, child, p, d)
			continue
		}
		if child.Items != nil {
			if item := resolve(defs, *child.Items); len(item.Properties) > 0 {
				fmt.Fprintf(w, "| `%s` | list | %s | %s |\n", p, defaultText(d), child.Description)
				reference(w, defs, item, p+"[]", nil)
				continue
			}
		}
		fmt.Fprintf(w, "| `%s` | %s | %s | %s |\n", p, typeName(child), defaultText(d), child.Description)
	}
}

func defaultText(d any) string {
	if d == nil {
		return ""
	}
	b, _ := json.Marshal(d)
	s := string(b)
	if s == `""` || s == "{}" || s == "[]" {
		return ""
	}
	return "`" + strings.ReplaceAll(s, "|", `\|`) + "`"
}
