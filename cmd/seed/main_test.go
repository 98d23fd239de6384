package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/warmcache/warmcache/query"
)

// TestHelpAndVersion: --help prints the flags on stdout and succeeds, --version prints the
// version, and a flag seed does not know is a usage error (exit 2).
func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "-customers") {
		t.Errorf("--help: %v; stdout:\n%s", err, stdout.String())
	}
	stdout.Reset()
	if err := run(context.Background(), []string{"--version"}, &stdout, &stderr); err != nil || !strings.HasPrefix(stdout.String(), "seed ") {
		t.Errorf("--version: %v; stdout %q", err, stdout.String())
	}
	if err := run(context.Background(), []string{"--bogus"}, &stdout, &stderr); !errors.Is(err, errUsage) {
		t.Errorf("--bogus: %v, want a usage error", err)
	}
	// PostgreSQL that cannot be reached is query.ErrUnavailable, which main exits 3 on.
	unreachable := "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"
	if err := run(context.Background(), []string{"--database-url", unreachable}, &stdout, &stderr); !errors.Is(err, query.ErrUnavailable) {
		t.Errorf("PostgreSQL unreachable: %v, want query.ErrUnavailable", err)
	}
}
