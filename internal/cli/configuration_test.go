package cli

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated tables of docs/configuration.md")

const updateCommand = "go test ./internal/cli -run TestConfigurationDoc -update"

// TestConfigurationDoc: the tables of the api's and the warmer's variables in
// docs/configuration.md, between <!-- generated: NAME --> and <!-- end -->, are those of
// APIConfig and WarmerConfig; -update writes them. The prose around them is left as it is.
func TestConfigurationDoc(t *testing.T) {
	path := filepath.Join(moduleRoot(t), "docs", "configuration.md")
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := string(page)
	var stale []string
	for _, table := range []struct {
		name string
		cfg  reflect.Type
	}{
		{"api", reflect.TypeFor[APIConfig]()},
		{"warmer", reflect.TypeFor[WarmerConfig]()},
	} {
		before := want
		if want, err = replaceGenerated(want, table.name, settingsTable(settingsOf(table.cfg))); err != nil {
			t.Fatal(err)
		}
		if want != before {
			stale = append(stale, table.name)
		}
	}
	switch {
	case *update && len(stale) > 0:
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the tables of %s in docs/configuration.md", strings.Join(stale, " and "))
	case len(stale) > 0:
		t.Errorf("docs/configuration.md: the table of %s differs from the configuration structs; run\n\t%s",
			strings.Join(stale, " and "), updateCommand)
	}
}

// settingsTable renders settings as a Markdown table: the variable; its default (envDefault,
// or "(required)" when help ends so); and what it means: help, then doc, then the alias.
func settingsTable(settings []setting) string {
	var b strings.Builder
	b.WriteString("| variable | default | meaning |\n| --- | --- | --- |\n")
	for _, s := range settings {
		help, required := strings.CutSuffix(s.help, " (required)")
		def := "(none)"
		switch {
		case s.hasDefault:
			def = "`" + s.def + "`"
		case required:
			def = "(required)"
		}
		meaning := markdown(help)
		if s.doc != "" {
			meaning += "; " + markdown(s.doc)
		}
		if s.alias != "" {
			meaning += ". Alias `" + s.alias + "`"
		}
		if s.secret {
			meaning += ". Or `" + s.name + "_FILE`: a file holding it, which wins over `" + s.name + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", s.name, def, meaning)
	}
	return b.String()
}

// markdown renders a tag's text for a table cell: each word that reads as code in a code span,
// and in the others what Markdown or HTML would not show as written escaped.
func markdown(text string) string {
	words := strings.Split(text, " ")
	for i, w := range words {
		core := strings.TrimLeft(w, "(")
		core = strings.TrimRight(core, ",;:.)")
		if core == "" || !codeLike(core) {
			words[i] = escape(w)
			continue
		}
		before, after, _ := strings.Cut(w, core)
		words[i] = escape(before) + "`" + core + "`" + escape(after)
	}
	return strings.Join(words, " ")
}

// codeLike reports a word that reads as code: a URL, a key=value, a --flag, a /path, or a
// VARIABLE_NAME.
func codeLike(word string) bool {
	return strings.Contains(word, "://") || strings.Contains(word, "=") || strings.HasPrefix(word, "--") ||
		strings.HasPrefix(word, "/") && len(word) > 1 || strings.Contains(word, "_") && word == strings.ToUpper(word)
}

// escape escapes what Markdown or HTML would not show as written.
var escape = strings.NewReplacer(`|`, `\|`, `*`, `\*`, `<`, `&lt;`).Replace

// replaceGenerated replaces what page holds between <!-- generated: name --> and the next
// <!-- end --> with text.
func replaceGenerated(page, name, text string) (string, error) {
	begin := "<!-- generated: " + name + " -->\n"
	const end = "<!-- end -->"
	i := strings.Index(page, begin)
	if i < 0 {
		return "", fmt.Errorf("docs/configuration.md has no %q marker", strings.TrimSpace(begin))
	}
	i += len(begin)
	j := strings.Index(page[i:], end)
	if j < 0 {
		return "", fmt.Errorf("docs/configuration.md: %q has no %q after it", strings.TrimSpace(begin), end)
	}
	return page[:i] + text + page[i+j:], nil
}

// TestEveryVariableDocumented: every environment variable the code reads is in
// docs/configuration.md, as `NAME`: the env tags of every struct, the names given to
// os.Getenv and os.LookupEnv, and the aliases. Test files are left out: what they read is set
// by the tests themselves.
func TestEveryVariableDocumented(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	page, err := os.ReadFile(filepath.Join(root, "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	read, unknown, err := variablesRead(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(unknown) > 0 {
		t.Errorf("variables read by a name that is not a literal, which no test can look for in the page:\n\t%s",
			strings.Join(unknown, "\n\t"))
	}
	for alias := range aliases {
		read[alias] = append(read[alias], "an alias of internal/cli")
	}
	var missing []string
	for name, where := range read {
		if !strings.Contains(string(page), "`"+name+"`") {
			missing = append(missing, fmt.Sprintf("%s (%s)", name, strings.Join(where, ", ")))
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("docs/configuration.md does not mention these variables the code reads:\n\t%s",
			strings.Join(missing, "\n\t"))
	}
	for _, s := range slices.Concat(settingsOf(reflect.TypeFor[APIConfig]()), settingsOf(reflect.TypeFor[WarmerConfig]())) {
		if _, ok := read[s.name]; !ok {
			t.Errorf("the scan of %s did not find %s, a setting of internal/cli", root, s.name)
		}
	}
}

// variablesRead returns the environment variables the non-test Go files of the module under
// root read, each with where it is read, and where os.Getenv or os.LookupEnv is given a name
// that is not a literal.
func variablesRead(root string) (read map[string][]string, unknown []string, err error) {
	read = map[string][]string{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == root {
				return nil
			}
			if name := d.Name(); strings.HasPrefix(name, ".") || name == "testdata" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // a module of its own
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		file, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.Field:
				if n.Tag == nil {
					return true
				}
				tag, _ := strconv.Unquote(n.Tag.Value)
				if name, _, _ := strings.Cut(reflect.StructTag(tag).Get("env"), ","); name != "" && name != "-" {
					read[name] = append(read[name], rel)
				}
			case *ast.CallExpr:
				if !readsEnvironment(file, n.Fun) || len(n.Args) == 0 {
					return true
				}
				lit, ok := n.Args[0].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					pos := fset.Position(n.Pos())
					unknown = append(unknown, fmt.Sprintf("%s:%d", rel, pos.Line))
					return true
				}
				name, _ := strconv.Unquote(lit.Value)
				read[name] = append(read[name], rel)
			}
			return true
		})
		return nil
	})
	return read, unknown, err
}

// readsEnvironment reports whether fun, called in file, is os.Getenv or os.LookupEnv.
func readsEnvironment(file *ast.File, fun ast.Expr) bool {
	sel, ok := fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "Getenv" && sel.Sel.Name != "LookupEnv" {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	if !ok {
		return false
	}
	for _, imp := range file.Imports {
		if imp.Path.Value != `"os"` {
			continue
		}
		if imp.Name == nil && pkg.Name == "os" || imp.Name != nil && imp.Name.Name == pkg.Name {
			return true
		}
	}
	return false
}

// moduleRoot returns the directory of go.mod, above the test's.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
