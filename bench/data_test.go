// Package bench holds warmcache's benchmarks (make bench): the product measured side by side with
// reference implementations that live only here. Nothing in the product imports it.
package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/query"
	"github.com/warmcache/warmcache/seed"
)

// dataset returns the URL of a database with the given scale, generating it on first use. The
// databases are kept between runs: 1M customers / 10M orders takes a minute to build.
func dataset(b *testing.B, customers, orders int) string {
	b.Helper()
	admin := testenv.Get(b).AdminURL
	u, err := url.Parse(admin)
	if err != nil {
		b.Fatal(err)
	}
	u.Path = fmt.Sprintf("/warmcache_bench_%d_%d", customers, orders)
	dbURL := u.String()
	ctx := context.Background()
	if err := query.EnsureDatabase(ctx, dbURL); err != nil {
		b.Fatal(err)
	}
	db := testenv.OpenDB(b, dbURL, query.Options{MaxConns: 4})
	defer db.Close() // a session left open would keep the database from being a template (scratchCopy)
	counts, err := db.Schema().Counts(ctx)
	if err != nil || counts["customers"] != int64(customers) || counts["orders"] != int64(orders) {
		b.Logf("generating %d customers / %d orders (kept for later runs)", customers, orders)
		scale := seed.Scale{Customers: customers, Orders: orders, Products: 10000, Year: 2004, Seed: 1}
		if _, err := seed.Load(ctx, db, scale, true, func(string, int64) {}); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Schema().Migrate(ctx, slog.New(slog.DiscardHandler)); err != nil {
		b.Fatal(err)
	}
	// What warmer migrate installs for the built-in jobs, which warmers started with --no-migrate
	// find.
	if err := db.Schema().InstallBuiltins(ctx); err != nil {
		b.Fatal(err)
	}
	return dbURL
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binary builds a command of the product once per benchmark run and returns its path.
func binary(b *testing.B, name string) string {
	b.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "warmcache-bench")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/...")
		cmd.Dir = testenv.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	return filepath.Join(binDir, name)
}
