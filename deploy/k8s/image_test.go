package k8s

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfile checks what can be checked without a Docker engine: a multi-stage build whose
// final stage is scratch and runs as a non-root user, and binaries that, built the way it builds
// them, are static (no ELF interpreter), so they run in an image without a C library.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := string(b)
	stages := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(dockerfile, -1)
	if len(stages) < 2 || stages[len(stages)-1][1] != "scratch" {
		t.Errorf("want a multi-stage build ending in FROM scratch, got %v", stages)
	}
	users := regexp.MustCompile(`(?m)^USER (\S+)`).FindAllStringSubmatch(dockerfile, -1)
	if len(users) == 0 || strings.HasPrefix(users[len(users)-1][1], "0") || strings.HasPrefix(users[len(users)-1][1], "root") {
		t.Errorf("the final stage must run as a non-root user, got USER %v", users)
	}
	if !strings.Contains(dockerfile, "CGO_ENABLED=0") {
		t.Error("the build must disable cgo for static binaries")
	}
	out := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-o", out+"/", "./cmd/api", "./cmd/warmer", "./cmd/seed")
	build.Dir = "../.."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, msg)
	}
	for _, name := range []string{"api", "warmer", "seed"} {
		f, err := elf.Open(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked", name)
			}
		}
		f.Close()
		if !strings.Contains(dockerfile, "/out/"+name) {
			t.Errorf("the image does not carry %s", name)
		}
	}
}
