package docs_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// codeName is a name of the code in backticks: a package of the repository, then a top-level
// name, then perhaps a method or field ("cache.Store.Get", "warm.Compute").
var codeName = regexp.MustCompile("`([a-z]+)\\.([A-Z][A-Za-z0-9]*)(?:\\.([A-Za-z][A-Za-z0-9]*))?`")

// TestArchitectureNamesTheCode holds docs/architecture.md to the code: every function, type and
// method it names in backticks, in a package of the repository, exists there. The page walks a
// GET and a write through the code; a rename that leaves the page behind fails here.
func TestArchitectureNamesTheCode(t *testing.T) {
	t.Parallel()
	page, err := os.ReadFile("architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	packages := map[string]map[string]bool{}
	checked := 0
	for _, m := range codeName.FindAllStringSubmatch(string(page), -1) {
		pkg, name, member := m[1], m[2], m[3]
		names, ok := packages[pkg]
		if !ok {
			names = declared(t, filepath.Join("..", pkg))
			packages[pkg] = names
		}
		if names == nil {
			continue // not a package of the repository (pgx, redis)
		}
		want := name
		if member != "" {
			want = name + "." + member
		}
		if !names[want] {
			t.Errorf("architecture.md names %s.%s, which package %s does not declare", pkg, want, pkg)
		}
		checked++
	}
	if checked < 20 {
		t.Errorf("architecture.md names %d functions and types of the code, want the walks' 20 or more", checked)
	}
}

// declared returns the top-level names of the Go package in dir ("Compute"), its methods and
// fields by type ("Store.Get", "Change.Table"), or nil when dir holds no Go package.
func declared(t *testing.T, dir string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		return nil
	}
	names := map[string]bool{}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					names[d.Name.Name] = true
					continue
				}
				names[receiver(d.Recv.List[0].Type)+"."+d.Name.Name] = true
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch s := spec.(type) {
					case *ast.TypeSpec:
						names[s.Name.Name] = true
						if st, ok := s.Type.(*ast.StructType); ok {
							for _, field := range st.Fields.List {
								for _, n := range field.Names {
									names[s.Name.Name+"."+n.Name] = true
								}
							}
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							names[n.Name] = true
						}
					}
				}
			}
		}
	}
	return names
}

// receiver returns the name of a method's receiver type: Store of *Store, Reader of *Reader[A].
func receiver(expr ast.Expr) string {
	switch e := expr.(type) {
	case *ast.StarExpr:
		return receiver(e.X)
	case *ast.IndexExpr:
		return receiver(e.X)
	case *ast.IndexListExpr:
		return receiver(e.X)
	case *ast.Ident:
		return e.Name
	}
	return ""
}
