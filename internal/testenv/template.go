package testenv

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
	"github.com/warmcache/warmcache/seed"
)

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// template returns the name of the template database, building it if no test process has yet.
// Its name carries a hash of everything it is made from (the dump, the schema, the migrations,
// the generator), so a change to any of them builds a new one.
func template(adminURL string) (string, error) {
	templateOnce.Do(func() { templateName, templateErr = ensureTemplate(context.Background(), adminURL) })
	return templateName, templateErr
}

// DataSet says what the test databases hold: "dellstore2" (the real dump) or "generated".
func DataSet() string {
	if _, ok := Dellstore2Dump(); ok {
		return "dellstore2"
	}
	return "generated"
}

func ensureTemplate(ctx context.Context, adminURL string) (string, error) {
	hash, err := sourceHash()
	if err != nil {
		return "", err
	}
	name := "wc_tmpl_" + DataSet() + "_" + hash
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	// Test packages run in parallel processes: one builds, the others wait here.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext('warmcache-testenv'))"); err != nil {
		return "", err
	}
	defer conn.Exec(ctx, "SELECT pg_advisory_unlock(hashtext('warmcache-testenv'))") //nolint:errcheck // closing the session unlocks too

	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	if err := dropLeftovers(ctx, conn); err != nil {
		return "", err
	}
	// Build under a temporary name and rename at the end, so that a run killed half-way never
	// leaves a template that looks complete.
	building := name + "_building"
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return "", err
	}
	if err := fill(ctx, withDatabase(adminURL, building)); err != nil {
		return "", fmt.Errorf("fill %s: %w", building, err)
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", building, name)); err != nil {
		return "", err
	}
	return name, nil
}

// dropLeftovers drops old templates, half-built ones, and test databases of killed runs (older
// than two hours, by the time in their name).
func dropLeftovers(ctx context.Context, conn *pgx.Conn) error {
	rows, _ := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE 'wc\\_%'")
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	cutoff := time.Now().Add(-2 * time.Hour).Unix()
	for _, n := range names {
		var created int64
		if _, err := fmt.Sscanf(n, "wc_t_%d_", &created); err == nil && created > cutoff {
			continue
		}
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+n+" WITH (FORCE)"); err != nil {
			return err
		}
	}
	return nil
}

func fill(ctx context.Context, dbURL string) error {
	if path, ok := Dellstore2Dump(); ok {
		if err := loadDump(ctx, dbURL, path); err != nil {
			return err
		}
	}
	db, err := query.Open(ctx, dbURL, query.Options{MaxConns: 4})
	if err != nil {
		return err
	}
	defer db.Close()
	if DataSet() == "generated" {
		if _, err := seed.Load(ctx, db, seed.Dellstore2, false, func(string, int64) {}); err != nil {
			return fmt.Errorf("generate data: %w", err)
		}
	} else if err := db.Schema().CreateDemoIndex(ctx); err != nil {
		return err
	}
	if err := db.Schema().Migrate(ctx, slog.New(slog.DiscardHandler)); err != nil {
		return err
	}
	// What the warmer installs at start for the built-in jobs (warm.Install), which warm's own
	// tests cannot call here.
	builtins, _, err := jobs.Load("", JobDefaults(), time.Now())
	if err != nil {
		return err
	}
	qualified, err := db.Schema().Resolve(ctx, jobs.TableNames(builtins))
	if err != nil {
		return err
	}
	if err := db.Schema().InstallDependencies(ctx, jobs.Tables(jobs.Resolve(builtins, qualified))); err != nil {
		return err
	}
	return db.Schema().InstallBuiltins(ctx)
}

// loadDump feeds the gzipped SQL dump to psql, which understands its COPY blocks.
func loadDump(ctx context.Context, dbURL, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, psqlPath(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dbURL)
	cmd.Stdin = zr
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("psql < %s: %w: %s", path, err, stderr.String())
	}
	return nil
}

// Psql returns a psql command on the database at dbURL, for tests that write as another
// application would.
func Psql(dbURL string, args ...string) *exec.Cmd {
	return exec.CommandContext(context.Background(), psqlPath(), append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dbURL}, args...)...)
}

func psqlPath() string {
	if p, err := exec.LookPath("psql"); err == nil {
		return p
	}
	if out, err := exec.CommandContext(context.Background(), "pg_config", "--bindir").Output(); err == nil {
		return filepath.Join(strings.TrimSpace(string(out)), "psql")
	}
	return "psql"
}

// sourceHash hashes the dump's size and the sources the template is made from: the package query
// (the schema, migrations and what installs the built-in jobs), the generator, and this file.
func sourceHash() (string, error) {
	h := sha256.New()
	if path, ok := Dellstore2Dump(); ok {
		info, err := os.Stat(path)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "dump %d\n", info.Size())
	}
	for _, dir := range []string{"query", "seed", "internal/testenv"} {
		root := filepath.Join(RepoRoot(), dir)
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(path, "_test.go") {
				return err
			}
			if dir == "internal/testenv" && filepath.Base(path) != "template.go" {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s %d\n", path[len(root):], len(b))
			h.Write(b)
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}
