package testenv

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// backendLine finds the backend's address in the shipped VCL.
var backendLine = regexp.MustCompile(`(?s)backend api \{.*?\}`)

// StartVarnish starts a Varnish of the test's own on a free loopback port, with the VCL warmcache
// ships (deploy/varnish/warmcache.vcl) pointed at backend (host:port), and stops it when the test
// ends. It returns Varnish's address. make test installs Varnish; without it the test fails.
func StartVarnish(t testing.TB, backend string) string {
	t.Helper()
	vcl, err := os.ReadFile(filepath.Join(RepoRoot(), "deploy", "varnish", "warmcache.vcl"))
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(backend)
	if err != nil {
		t.Fatal(err)
	}
	vcl = backendLine.ReplaceAll(vcl, []byte(`backend api { .host = "`+host+`"; .port = "`+port+`"; }`))
	dir := t.TempDir()
	path := filepath.Join(dir, "warmcache.vcl")
	if err := os.WriteFile(path, vcl, 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	// -j none: no jail, so Varnish reads the test's files as the user running the test.
	cmd := exec.CommandContext(context.Background(), "varnishd", "-F", "-j", "none", "-a", addr, "-f", path,
		"-n", filepath.Join(dir, "work"), "-s", "malloc,64m", "-T", "none")
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start varnishd (make test installs it): %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill() //nolint:errcheck // it may be gone already
		cmd.Wait()         //nolint:errcheck // killed
	})
	waitFor(t, "varnishd on "+addr, func() bool {
		res, err := http.Head("http://" + addr + "/healthz") //nolint:noctx // a probe of the test's own server
		if err != nil {
			return false
		}
		res.Body.Close()
		return true
	})
	return addr
}
