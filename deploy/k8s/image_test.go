package k8s

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"
)

// modulePath is the root module's, which the images name as their source.
const modulePath = "github.com/warmcache/warmcache"

// ociLabels are the labels both image files set, with the value each must have (empty: a
// build argument's).
var ociLabels = map[string]string{
	"org.opencontainers.image.title":    "warmcache",
	"org.opencontainers.image.version":  `${VERSION}`,
	"org.opencontainers.image.revision": `${REVISION}`,
	"org.opencontainers.image.source":   modulePath,
	"org.opencontainers.image.licenses": "Apache-2.0",
}

// checkImageFile checks what both image files share: a final stage FROM scratch that runs as a
// non-root user, the OCI labels, the three binaries and the CA certificates.
func checkImageFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	file := string(b)
	stages := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(file, -1)
	if len(stages) == 0 || stages[len(stages)-1][1] != "scratch" {
		t.Errorf("%s: the final stage must be FROM scratch, got %v", path, stages)
	}
	users := regexp.MustCompile(`(?m)^USER (\S+)`).FindAllStringSubmatch(file, -1)
	if len(users) == 0 || users[len(users)-1][1] != "65532:65532" {
		t.Errorf("%s: the final stage must run as 65532:65532, the manifests' user, got USER %v", path, users)
	}
	for label, value := range ociLabels {
		if !strings.Contains(file, label+`="`+value+`"`) {
			t.Errorf("%s: no LABEL %s=%q", path, label, value)
		}
	}
	for _, arg := range []string{"VERSION", "REVISION"} {
		if !regexp.MustCompile(`(?m)^ARG ` + arg + `$`).MatchString(file) {
			t.Errorf("%s: no ARG %s", path, arg)
		}
	}
	if !strings.Contains(file, "/etc/ssl/certs/ca-certificates.crt") {
		t.Errorf("%s: the image carries no CA certificates", path)
	}
	return file
}

// TestDockerfile checks what can be checked without a Docker engine: a multi-stage build whose
// final stage is scratch and runs as a non-root user, stamped as make build stamps, and binaries
// that, built the way it builds them, are static (no ELF interpreter), so they run in an image
// without a C library.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	dockerfile := checkImageFile(t, "../../Dockerfile")
	if n := len(regexp.MustCompile(`(?m)^FROM `).FindAllString(dockerfile, -1)); n < 2 {
		t.Errorf("want a multi-stage build, got %d stages", n)
	}
	if !strings.Contains(dockerfile, "CGO_ENABLED=0") {
		t.Error("the build must disable cgo for static binaries")
	}
	for _, x := range []string{modulePath + "/internal/build.version=${VERSION}", modulePath + "/internal/build.revision=${REVISION}"} {
		if !strings.Contains(dockerfile, "-X "+x) {
			t.Errorf("the build does not stamp -X %s, as make build does", x)
		}
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

// TestContainerfile checks the file make image builds from: one stage, FROM scratch (nothing
// to pull), the binaries of make build copied from its context.
func TestContainerfile(t *testing.T) {
	t.Parallel()
	containerfile := checkImageFile(t, "../image/Containerfile")
	if n := len(regexp.MustCompile(`(?m)^FROM `).FindAllString(containerfile, -1)); n != 1 {
		t.Errorf("want one stage, FROM scratch, got %d: make image pulls nothing", n)
	}
	if !regexp.MustCompile(`(?m)^COPY api warmer seed /$`).MatchString(containerfile) {
		t.Error("the image does not carry api, warmer and seed at /, where the manifests' commands name them")
	}
	license, err := os.ReadFile("../../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(license), "Apache License\n                           Version 2.0") {
		t.Error("LICENSE is not the Apache License 2.0 the images' label names")
	}
}

// makefileRelease returns the Makefile's RELEASE: the version make image builds, without a tag
// on HEAD, is RELEASE-dev.<commit>, and a release's is RELEASE.
func makefileRelease(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RELEASE\s*:?=\s*(\S+)\s*$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("the Makefile sets no RELEASE")
	}
	return string(m[1])
}

// TestImageIsTheRelease holds the base's image to the Makefile's RELEASE: every warmcache
// container of the rendered base runs warmcache:RELEASE, the image make image builds at the
// release's tag.
func TestImageIsTheRelease(t *testing.T) {
	t.Parallel()
	release := makefileRelease(t)
	b, err := os.ReadFile("base/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k types.Kustomization
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	if len(k.Images) != 1 || k.Images[0].Name != "warmcache" || k.Images[0].NewTag != release {
		t.Errorf("base/kustomization.yaml: images are %+v, want warmcache at newTag %q, the Makefile's RELEASE", k.Images, release)
	}
	n := 0
	for _, o := range rendered(t, "base", "Deployment") {
		var d appsv1.Deployment
		if err := decodeStrict(o, &d); err != nil {
			t.Fatal(err)
		}
		for _, c := range append(d.Spec.Template.Spec.InitContainers, d.Spec.Template.Spec.Containers...) {
			n++
			if c.Image != "warmcache:"+release {
				t.Errorf("%s: containers[%s] runs %s, want warmcache:%s", o, c.Name, c.Image, release)
			}
		}
	}
	if n == 0 {
		t.Error("the base has no container")
	}
}
