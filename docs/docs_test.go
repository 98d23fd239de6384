package docs_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// readmeLimit is the most the README may weigh: it is the page that must fit on a screen, and
// everything else belongs in docs/.
const readmeLimit = 10 * 1024

// root is the repository's top directory, seen from this package's directory, where go test runs.
const root = ".."

// TestREADMEFitsOnAScreen holds the README to its size.
func TestREADMEFitsOnAScreen(t *testing.T) {
	t.Parallel()
	info, err := os.Stat(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() > readmeLimit {
		t.Errorf("README.md is %d bytes, more than %d: move the detail into a page of docs/", info.Size(), readmeLimit)
	}
}

// TestLinksStayInTheRepository checks every link of the README, the changelog and the docs
// pages: a relative link names a file or directory inside the repository, a link to a heading
// (page.md#heading, or #heading within the page) names a heading that exists, and nothing links
// outside the repository, since a clone must be readable on its own.
func TestLinksStayInTheRepository(t *testing.T) {
	t.Parallel()
	for _, page := range pages(t) {
		t.Run(page, func(t *testing.T) {
			t.Parallel()
			doc := parse(t, page)
			for _, l := range doc.links {
				if err := check(t, page, l.target); err != nil {
					t.Errorf("%s:%d: link %q: %v", page, l.line, l.target, err)
				}
			}
			for _, u := range doc.urls {
				if slices.Contains(doc.links, u) {
					continue // reported as a link above
				}
				t.Errorf("%s:%d: %q links outside the repository: name the project in plain text, or link to a page of docs/",
					page, u.line, u.target)
			}
		})
	}
}

// TestEveryPageIsLinkedFromTheREADME: a page nobody links to is a page nobody reads.
func TestEveryPageIsLinkedFromTheREADME(t *testing.T) {
	t.Parallel()
	linked := map[string]bool{}
	for _, l := range parse(t, "README.md").links {
		path, _, _ := strings.Cut(l.target, "#")
		linked[filepath.Clean(path)] = true
	}
	for _, page := range pages(t) {
		if strings.HasPrefix(page, "docs"+string(filepath.Separator)) && !linked[page] {
			t.Errorf("README.md does not link to %s", page)
		}
	}
}

// TestSlug holds the anchors to GitHub's spelling of them, which the links must match.
func TestSlug(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ heading, want string }{
		{"Two commands", "two-commands"},
		{"A GET, step by step", "a-get-step-by-step"},
		{"The warmer's commands", "the-warmers-commands"},
		{"`X-Cache`", "x-cache"},
		{"`warmcache_outbox` rows", "warmcache_outbox-rows"},
		{"TTL policies and jitter", "ttl-policies-and-jitter"},
		{"[Linked](other.md) heading", "linked-heading"},
		{"Sizing Redis: 1.5×", "sizing-redis-15"},
	} {
		if got := slug(tc.heading); got != tc.want {
			t.Errorf("slug(%q) = %q, want %q", tc.heading, got, tc.want)
		}
	}
}

// pages returns the Markdown files whose links are checked, relative to the repository.
func pages(t *testing.T) []string {
	t.Helper()
	list := []string{"README.md", "CHANGELOG.md"}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) == 0 {
		t.Fatal("no pages in docs/")
	}
	for _, d := range docs {
		rel, err := filepath.Rel(root, d)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, rel)
	}
	return list
}

// link is a link target, or a URL, and the line it is on.
type link struct {
	target string
	line   int
}

// document is what the checks read of a Markdown page: its links, the URLs it holds outside
// code (GitHub makes links of them, bare or not), and the anchors of its headings.
type document struct {
	links   []link
	urls    []link
	anchors map[string]bool
}

var (
	// inlineLink matches [text](target) and ![alt](target), with an optional title.
	inlineLink = regexp.MustCompile(`!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]*)>?(?:\s+"[^"]*")?\s*\)`)
	// definition matches a reference-style link's definition: [label]: target.
	definition = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)`)
	// url matches what GitHub turns into a link to elsewhere.
	url = regexp.MustCompile(`(?i)\b(?:https?|ftp)://[^\s<>()]+|\bwww\.[a-z0-9-]+\.[a-z]{2,}[^\s<>()]*|\bmailto:[^\s<>()]+`)
	// codeSpan matches inline code, whose text is never a link.
	codeSpan = regexp.MustCompile("(`+)(?:[^`]|`[^`])*?(?:`+)")
	// heading matches an ATX heading.
	heading = regexp.MustCompile(`^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$`)
	// htmlComment is left out of the text, as GitHub leaves it out of the page.
	htmlComment = regexp.MustCompile(`<!--.*?-->`)
)

// parse reads a page, relative to the repository, outside its fenced code blocks and code spans.
func parse(t *testing.T, page string) document {
	t.Helper()
	f, err := os.Open(filepath.Join(root, page))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc := document{anchors: map[string]bool{}}
	seen := map[string]int{}
	var fence string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if marker := fenceMarker(line); marker != "" && (fence == "" || strings.HasPrefix(marker, fence)) {
			if fence == "" {
				fence = marker
			} else {
				fence = ""
			}
			continue
		}
		if fence != "" {
			continue
		}
		line = htmlComment.ReplaceAllString(line, "")
		if m := heading.FindStringSubmatch(line); m != nil {
			a := slug(m[2])
			if k := seen[a]; k > 0 {
				doc.anchors[fmt.Sprintf("%s-%d", a, k)] = true
			} else {
				doc.anchors[a] = true
			}
			seen[a]++
		}
		text := codeSpan.ReplaceAllString(line, "code")
		for _, m := range inlineLink.FindAllStringSubmatch(text, -1) {
			doc.links = append(doc.links, link{m[1], n})
		}
		if m := definition.FindStringSubmatch(text); m != nil {
			doc.links = append(doc.links, link{m[1], n})
		}
		for _, u := range url.FindAllString(text, -1) {
			doc.urls = append(doc.urls, link{u, n})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", page, err)
	}
	if fence != "" {
		t.Fatalf("%s: a code block (%s) is never closed", page, fence)
	}
	return doc
}

// fenceMarker returns the run of backticks or tildes that opens or closes a fenced code block
// on line, or "".
func fenceMarker(line string) string {
	trimmed := strings.TrimLeft(line, " ")
	if len(line)-len(trimmed) > 3 {
		return ""
	}
	for _, c := range []string{"`", "~"} {
		n := len(trimmed) - len(strings.TrimLeft(trimmed, c))
		if n >= 3 {
			return trimmed[:n]
		}
	}
	return ""
}

// check reports what is wrong with a link of page: a scheme, a path outside the repository, a
// path that does not exist, or an anchor that names no heading.
func check(t *testing.T, page, target string) error {
	t.Helper()
	if target == "" {
		return fmt.Errorf("empty target")
	}
	if strings.Contains(target, ":") {
		return fmt.Errorf("links outside the repository: a clone must be readable on its own")
	}
	path, anchor, hasAnchor := strings.Cut(target, "#")
	if strings.Contains(filepath.ToSlash(path), "../shared") {
		return fmt.Errorf("points at ../shared, which a clone of the repository does not have")
	}
	if strings.HasPrefix(path, "/") {
		return fmt.Errorf("is absolute: write it relative to %s", page)
	}
	resolved := page // a link to #heading stays on the page
	if path != "" {
		resolved = filepath.Join(filepath.Dir(page), filepath.FromSlash(path))
		if resolved == ".." || strings.HasPrefix(resolved, ".."+string(filepath.Separator)) {
			return fmt.Errorf("leaves the repository (resolves to %s)", filepath.ToSlash(resolved))
		}
		if _, err := os.Stat(filepath.Join(root, resolved)); err != nil {
			return fmt.Errorf("%s does not exist in the repository", filepath.ToSlash(resolved))
		}
	}
	if !hasAnchor {
		return nil
	}
	if filepath.Ext(resolved) != ".md" {
		return fmt.Errorf("an anchor into %s cannot be checked: link to a Markdown page's heading, or to the file", filepath.ToSlash(resolved))
	}
	if !parse(t, resolved).anchors[anchor] {
		return fmt.Errorf("%s has no heading with the anchor #%s", filepath.ToSlash(resolved), anchor)
	}
	return nil
}

// slug returns the anchor GitHub gives a heading: its text without markup, in lower case,
// without punctuation other than '-' and '_', spaces made hyphens.
func slug(heading string) string {
	text := inlineLink.ReplaceAllStringFunc(heading, func(l string) string {
		return l[strings.Index(l, "[")+1 : strings.LastIndex(l, "](")]
	})
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
