package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/warmcache/warmcache/internal/testenv"
)

func TestMigrateExitStatus(t *testing.T) {
	t.Parallel()
	dbURL := testenv.NewEmptyDatabase(t)
	for _, tc := range []struct {
		name    string
		args    []string
		environ []string
		status  int
		stderr  string
	}{
		{"no database url", []string{"migrate"}, nil, 2, "DATABASE_URL"},
		{"bad log level", []string{"migrate"}, []string{"DATABASE_URL=" + dbURL, "LOG_LEVEL=loud"}, 2, "LOG_LEVEL"},
		{"unknown command", []string{"frobnicate"}, []string{"DATABASE_URL=" + dbURL}, 2, "usage"},
		{"database without dellstore2", []string{"migrate"}, []string{"DATABASE_URL=" + dbURL}, 1, "orders"},
		{"database down", []string{"migrate"}, []string{"DATABASE_URL=postgres://x@127.0.0.1:1/x?connect_timeout=2"}, 1, "migrate"},
		{"migrated", []string{"migrate"}, []string{"PG_SERVICE_URI=" + testenv.NewDatabase(t)}, 0, "migrate_started"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			status := cli(context.Background(), tc.args, tc.environ, &stderr)
			if status != tc.status || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("warmer %v: status %d, stderr %q; want status %d mentioning %q",
					tc.args, status, stderr.String(), tc.status, tc.stderr)
			}
		})
	}
}
