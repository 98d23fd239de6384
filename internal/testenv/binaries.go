package testenv

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// RunMainEnv is the variable, set in a test's process, that makes the test binary run main
// (RunMain).
const RunMainEnv = "WARMCACHE_TEST_RUN_MAIN=1"

// RunMain is the TestMain of a binary's tests that run the test binary as the binary itself, to
// signal or kill a real process: with RunMainEnv in its environment, the process runs main
// instead of the tests.
func RunMain(m *testing.M, main func()) {
	if os.Getenv("WARMCACHE_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// Environ is the environment of a binary of the product run by a test: the database at dbURL,
// the tests' Redis with a namespace of the test's own, the admin listener on a free port, and
// extra. DATABASE_URL, REDIS_URL and CACHE_NAMESPACE come first, in that order.
func Environ(t testing.TB, dbURL string, extra ...string) []string {
	t.Helper()
	return append([]string{"DATABASE_URL=" + dbURL, "REDIS_URL=" + Get(t).RedisURL, "CACHE_NAMESPACE=" + Namespace(t),
		"ADMIN_ADDR=127.0.0.1:0"}, extra...)
}

// Lines is what a process a test started writes on its standard error, read line by line.
type Lines struct {
	*bufio.Scanner
	pipe io.Reader
}

// StartLogged starts cmd with its standard error piped, failing the test when it cannot, and
// returns that output. Whoever stops reading it before its end calls Discard.
func StartLogged(t testing.TB, cmd *exec.Cmd) *Lines {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return &Lines{Scanner: bufio.NewScanner(stderr), pipe: stderr}
}

// Await reads lines until one matches re, and returns the match and its groups; nil when the
// output ended first. It discards the rest.
func (l *Lines) Await(re *regexp.Regexp) []string {
	m := l.Find(re)
	if m != nil {
		l.Discard()
	}
	return m
}

// Find reads lines until one matches re, and returns the match and its groups; nil when the
// output ended first. The lines after it are left to read.
func (l *Lines) Find(re *regexp.Regexp) []string {
	for l.Scan() {
		if m := re.FindStringSubmatch(l.Text()); m != nil {
			return m
		}
	}
	return nil
}

// Discard reads the rest of the output in the background, so that the process never blocks
// writing its log.
func (l *Lines) Discard() {
	go io.Copy(io.Discard, l.pipe) //nolint:errcheck // draining the log
}

// RunInProcess runs a binary's entry (cli.API or cli.Warmer, with its arguments) in the test
// process until the test ends, its output kept, and waits up to timeout for a line matching
// started. It returns the match and its groups, and the output. It fails the test when the
// binary returns first.
func RunInProcess(t testing.TB, started *regexp.Regexp, timeout time.Duration, main func(ctx context.Context, log io.Writer) int) ([]string, *Output) {
	t.Helper()
	log := &Output{}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		main(ctx, log)
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	return log.WaitFor(t, started, exited, timeout), log
}

// Command is a binary's entry as its tests call it: cli.API or cli.Warmer with the binary's run.
type Command func(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int

// Entry returns the Command of entry (cli.API, cli.Warmer) with run, as the binary's main calls it.
func Entry[R any](entry func(ctx context.Context, args, environ []string, stdout, stderr io.Writer, run R) int, run R) Command {
	return func(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
		return entry(ctx, args, environ, stdout, stderr, run)
	}
}

// CheckHelpAndVersion holds the binary called name to its --help, which exits 0 and mentions its
// usage and each of settings, and its --version, which gives its name, its version and the Go
// it was built with.
func CheckHelpAndVersion(t testing.TB, name string, cmd Command, settings []string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if status := cmd(context.Background(), []string{"--help"}, nil, &stdout, &stderr); status != 0 {
		t.Fatalf("--help: status %d; stderr:\n%s", status, stderr.String())
	}
	for _, want := range append([]string{"usage: " + name}, settings...) {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("--help does not mention %q:\n%s", want, stdout.String())
		}
	}
	stdout.Reset()
	if status := cmd(context.Background(), []string{"--version"}, nil, &stdout, &stderr); status != 0 ||
		!regexp.MustCompile(`^`+name+` \S+.* \(go1\.\d+`).MatchString(stdout.String()) {
		t.Errorf("--version: status %d, output %q", status, stdout.String())
	}
}

// CheckNoSuchRedisDatabase runs the binary called name with args and environ, its REDIS_URL
// turned to a database the tests' Redis server does not have, and expects exit status 2 and a
// message naming the setting.
func CheckNoSuchRedisDatabase(t testing.TB, name string, cmd Command, args, environ []string) {
	t.Helper()
	env := slices.Clone(environ)
	for i, setting := range env {
		if strings.HasPrefix(setting, "REDIS_URL=") {
			env[i] = "REDIS_URL=redis://" + HostPort(t, Get(t).RedisURL) + "/64" // scripts/servers configures 64: 0 to 63
		}
	}
	var stdout, stderr bytes.Buffer
	status := cmd(context.Background(), args, env, &stdout, &stderr)
	want := name + ": configuration: REDIS_URL: database 64: no such database on the server (Redis has 16, 0 to 15, unless its databases setting says more)\n"
	if status != 2 || !strings.HasSuffix(stderr.String(), want) {
		t.Errorf("status %d, want 2, and stderr ending\n%s\ngot\n%s", status, want, stderr.String())
	}
}
