// Command seed creates the dellstore2 schema in a PostgreSQL database and fills it with generated
// data at any scale, through COPY, with a progress bar on a terminal.
//
//	seed [--customers N] [--orders N] [--products N] [--year Y] [--lines=false]
//	     [--drop | --if-empty] [--create-database]
//	seed --help | --version
//
// The database is DATABASE_URL (alias PG_SERVICE_URI) or --database-url. Without --drop it
// refuses to touch a database that already has dellstore2 tables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/warmcache/warmcache/internal/build"
	"github.com/warmcache/warmcache/internal/cli"
	"github.com/warmcache/warmcache/query"
	"github.com/warmcache/warmcache/seed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		switch {
		case errors.Is(err, errUsage):
			os.Exit(2)
		case errors.Is(err, query.ErrUnavailable):
			os.Exit(3) // PostgreSQL could not be reached: try again later
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the usage is written once, below: to stdout for --help
	scale := seed.Dellstore2
	url := fs.String("database-url", databaseURL(), "PostgreSQL URL (default $DATABASE_URL)")
	fs.IntVar(&scale.Customers, "customers", scale.Customers, "number of customers")
	fs.IntVar(&scale.Orders, "orders", scale.Orders, "number of orders")
	fs.IntVar(&scale.Products, "products", scale.Products, "number of products")
	fs.IntVar(&scale.Year, "year", scale.Year, "year the orders fall in")
	fs.BoolVar(&scale.Lines, "lines", scale.Lines, "generate orderlines and cust_hist (1-9 lines per order)")
	fs.Uint64Var(&scale.Seed, "seed", scale.Seed, "random seed: the same seed and scale give the same data")
	drop := fs.Bool("drop", false, "drop existing dellstore2 tables first")
	create := fs.Bool("create-database", false, "create the database if it does not exist")
	ifEmpty := fs.Bool("if-empty", false, "do nothing if the database already has dellstore2 tables")
	version := fs.Bool("version", false, "print the version and exit")
	usage := func(w io.Writer) {
		fmt.Fprintln(w, "usage: seed [flags]: the dellstore2 schema, filled with generated data; exit status 0, 1 on a failure, 2 on bad usage, 3 when PostgreSQL cannot be reached\n\nflags:")
		cli.PrintFlags(w, fs)
	}
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		usage(stdout)
		return nil
	case err != nil:
		return fmt.Errorf("%w: %w", errUsage, err)
	case *version:
		fmt.Fprintln(stdout, "seed", build.Read())
		return nil
	}
	if *url == "" {
		return fmt.Errorf("%w: DATABASE_URL is not set and --database-url not given", errUsage)
	}
	if err := scale.Validate(); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}

	if *create {
		if err := query.EnsureDatabase(ctx, *url); err != nil {
			return fmt.Errorf("create database: %w", err)
		}
	}
	db, err := query.Open(ctx, *url, query.Options{MaxConns: 4})
	if err != nil {
		return fmt.Errorf("%w: DATABASE_URL: %w", errUsage, err)
	}
	defer db.Close()
	if *ifEmpty {
		missing, err := db.Schema().Missing(ctx, query.BuiltinTables)
		if err != nil {
			return err
		}
		if len(missing) == 0 {
			fmt.Fprintln(stdout, "the database already has the dellstore2 tables; nothing loaded")
			return nil
		}
	}

	started := time.Now()
	bar := newProgress(scale, stderr)
	counts, err := seed.Load(ctx, db, scale, *drop, bar.report)
	bar.finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "loaded in %s (peak RSS of seed %d MiB)\n", time.Since(started).Round(time.Millisecond), peakRSSMiB())
	for _, t := range scale.Tables() {
		fmt.Fprintf(stdout, "  %-10s %12d rows\n", t.Name, counts[t.Name])
	}
	return nil
}

// progress draws one bar over the rows of all tables when stderr is a terminal.
type progress struct {
	mu   sync.Mutex
	bar  *progressbar.ProgressBar
	rows map[string]int64
}

func newProgress(scale seed.Scale, w io.Writer) *progress {
	p := &progress{rows: map[string]int64{}}
	if f, ok := w.(*os.File); !ok || !term.IsTerminal(int(f.Fd())) {
		return p
	}
	var total int64
	for _, t := range scale.Tables() {
		total += t.Rows
	}
	p.bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("loading rows"), progressbar.OptionShowCount(),
		progressbar.OptionShowIts(), progressbar.OptionSetItsString("rows"),
		progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
	return p
}

func (p *progress) report(table string, n int64) {
	if p.bar == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rows[table] = n
	var sum int64
	for _, v := range p.rows {
		sum += v
	}
	p.bar.Set64(sum) //nolint:errcheck // drawing progress cannot fail in a way worth reporting
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish() //nolint:errcheck // as above
	}
}

// databaseURL is DATABASE_URL, or its alias PG_SERVICE_URI. The names are literals, for the test
// that every variable read is in docs/configuration.md.
func databaseURL() string {
	if url := os.Getenv("DATABASE_URL"); url != "" {
		return url
	}
	return os.Getenv("PG_SERVICE_URI")
}

func peakRSSMiB() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss / 1024 // kilobytes on Linux
}
