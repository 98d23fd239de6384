package k8s

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// operations is the page with a section for each alert, seen from this package's directory.
var operations = filepath.Join("..", "..", "docs", "operations.md")

// runbookPrefix is what each alert's runbook_url starts with: the page, relative to the
// repository, which operators make absolute where they host the docs (docs/operations.md).
const runbookPrefix = "docs/operations.md#"

// TestEveryAlertHasARunbook: each alert's runbook_url names its own section of
// docs/operations.md, the heading that is the alert's name, and that heading exists.
func TestEveryAlertHasARunbook(t *testing.T) {
	t.Parallel()
	anchors := headingAnchors(t, operations)
	n := 0
	for _, g := range prometheusRule(t).Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			url, ok := r.Annotations["runbook_url"]
			want := runbookPrefix + slug(r.Alert)
			switch {
			case !ok:
				t.Errorf("alert %s has no runbook_url annotation: want %s", r.Alert, want)
			case url != want:
				t.Errorf("alert %s: runbook_url is %q, want its own section, %q", r.Alert, url, want)
			case !anchors[strings.TrimPrefix(url, runbookPrefix)]:
				t.Errorf("alert %s: runbook_url %s names no heading of %s: add a section ### %s", r.Alert, url, operations, r.Alert)
			}
		}
	}
	if n == 0 {
		t.Error("no alert was read")
	}
}

// TestSlug holds the anchors to GitHub's spelling of them, which the runbook URLs must match.
func TestSlug(t *testing.T) {
	t.Parallel()
	for heading, want := range map[string]string{
		"WarmcacheJobNotRefreshing":        "warmcachejobnotrefreshing",
		"Sizing Redis":                     "sizing-redis",
		"The api's metrics and logs":       "the-apis-metrics-and-logs",
		"`warmcache_outbox` rows":          "warmcache_outbox-rows",
		"[Linked](other.md) heading":       "linked-heading",
		"When Redis or PostgreSQL is down": "when-redis-or-postgresql-is-down",
	} {
		if got := slug(heading); got != want {
			t.Errorf("slug(%q) = %q, want %q", heading, got, want)
		}
	}
}

var (
	// atxHeading matches a Markdown heading.
	atxHeading = regexp.MustCompile(`^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$`)
	// markdownLink matches [text](target), whose text alone is in a heading's anchor.
	markdownLink = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
)

// headingAnchors returns the anchors of the headings of a Markdown page, outside its fenced code
// blocks, as GitHub makes them (a repeated heading's gets -1, -2, ...).
func headingAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	anchors, seen := map[string]bool{}, map[string]int{}
	var fence string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if trimmed := strings.TrimLeft(line, " "); strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			marker := trimmed[:3]
			switch {
			case fence == "":
				fence = marker
			case marker == fence:
				fence = ""
			}
			continue
		}
		if fence != "" {
			continue
		}
		if m := atxHeading.FindStringSubmatch(line); m != nil {
			a := slug(m[1])
			if k := seen[a]; k > 0 {
				anchors[fmt.Sprintf("%s-%d", a, k)] = true
			} else {
				anchors[a] = true
			}
			seen[a]++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return anchors
}

// slug returns the anchor GitHub gives a heading: its text without markup, in lower case, without
// punctuation other than '-' and '_', spaces made hyphens.
func slug(heading string) string {
	text := markdownLink.ReplaceAllString(heading, "$1")
	text = strings.NewReplacer("`", "", "*", "").Replace(text)
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Mn, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
