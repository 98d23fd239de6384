// Command api serves warmcache's cached aggregates over HTTP.
//
//	api [--jobs FILE]
//	api --help | --version
//
// Configuration comes from the environment; see docs/configuration.md. Exit status: 0 after
// SIGTERM or SIGINT (in-flight requests finished), 1 on a failure, 2 on bad usage or
// configuration.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // calendar expiry needs zone data even in images without /usr/share/zoneinfo

	"github.com/warmcache/warmcache/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.API(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr, run)
	stop()
	os.Exit(code)
}
