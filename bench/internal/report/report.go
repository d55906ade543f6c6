// Package report assembles the benchmark document: headings, paragraphs, code blocks and tables, rendered as
// Markdown.
package report

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Doc is a Markdown document built in order.
type Doc struct {
	b strings.Builder
}

// H1, H2 and H3 add headings.
func (d *Doc) H1(s string) { fmt.Fprintf(&d.b, "# %s\n\n", s) }
func (d *Doc) H2(s string) { fmt.Fprintf(&d.b, "## %s\n\n", s) }
func (d *Doc) H3(s string) { fmt.Fprintf(&d.b, "### %s\n\n", s) }

// P adds a paragraph (format and args as fmt.Sprintf).
func (d *Doc) P(format string, args ...any) { fmt.Fprintf(&d.b, format+"\n\n", args...) }

// List adds a bulleted list.
func (d *Doc) List(items ...string) {
	for _, it := range items {
		fmt.Fprintf(&d.b, "- %s\n", it)
	}
	d.b.WriteString("\n")
}

// Code adds a fenced code block.
func (d *Doc) Code(lang, s string) {
	fmt.Fprintf(&d.b, "```%s\n%s\n```\n\n", lang, strings.TrimRight(s, "\n"))
}

// Table adds a table; cells are written as given (pipes escaped).
func (d *Doc) Table(header []string, rows [][]string) {
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	row := func(cells []string) {
		d.b.WriteString("|")
		for _, c := range cells {
			d.b.WriteString(" " + esc(c) + " |")
		}
		d.b.WriteString("\n")
	}
	row(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = "---"
	}
	row(sep)
	for _, r := range rows {
		row(r)
	}
	d.b.WriteString("\n")
}

// Raw appends already rendered Markdown.
func (d *Doc) Raw(s string) { d.b.WriteString(s) }

// String is the Markdown text.
func (d *Doc) String() string { return d.b.String() }

// Num formats a rate or count with thousands kept readable.
func Num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// Ms formats a duration in milliseconds.
func Ms(d time.Duration) string { return MsF(float64(d) / float64(time.Millisecond)) }

// MsF formats float milliseconds.
func MsF(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v < 1:
		return fmt.Sprintf("%.3f ms", v)
	case v < 10:
		return fmt.Sprintf("%.2f ms", v)
	default:
		return fmt.Sprintf("%.1f ms", v)
	}
}

// Ratio formats a ratio like 0.97x.
func Ratio(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", v)
}

// Pct formats a relative spread as ±x%.
func Pct(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.0f%%", v*100)
}

// MiB formats bytes as MiB.
func MiB(b float64) string {
	if math.IsNaN(b) {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", b/(1<<20))
}
