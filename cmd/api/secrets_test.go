package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warmcache/warmcache/internal/cli"
	"github.com/warmcache/warmcache/internal/testenv"
)

// TestNoPasswordInTheLog starts the api with its passwords written in every form PostgreSQL and
// Redis accept, and reads what it logs (the config event, postgresql_connected, redis_connected
// and the errors of settings that do not parse): the password never shows, its mask does.
func TestNoPasswordInTheLog(t *testing.T) {
	t.Parallel()
	const password = "s3cret-Pa55"
	db, err := url.Parse(testenv.NewDatabase(t)) // the test server trusts loopback: any password connects
	if err != nil {
		t.Fatal(err)
	}
	host, port, name := db.Hostname(), db.Port(), strings.TrimPrefix(db.Path, "/")
	redisAddr := testenv.HostPort(t, testenv.Get(t).RedisURL)
	withPassword := *db
	withPassword.User = url.UserPassword("postgres", password)
	pgURL := withPassword.String()
	for _, tc := range []struct {
		name             string
		databaseURL      string
		redisURL         string
		started          bool   // the api starts; otherwise it exits 2
		event, masked    string // an event of the log, and the masked form it must show
		unmaskedFragment string // a part of the password that must not show either, if any
	}{
		{"URL user and password", pgURL, "redis://" + redisAddr + "/0", true,
			"postgresql_connected", "postgres:xxxxx@", ""},
		{"password query parameter", fmt.Sprintf("postgres://postgres@%s:%s/%s?sslmode=disable&password=%s", host, port, name, password),
			"redis://" + redisAddr + "/0", true, "postgresql_connected", "password=xxxxx", ""},
		{"key=value", fmt.Sprintf("host=%s port=%s user=postgres password=%s dbname=%s sslmode=disable", host, port, password, name),
			"redis://" + redisAddr + "/0", true, "postgresql_connected", "password=xxxxx", ""},
		{"key=value quoted", fmt.Sprintf("host=%s port=%s user=postgres password='%s phrase' dbname=%s sslmode=disable", host, port, password, name),
			"redis://" + redisAddr + "/0", true, "postgresql_connected", "password=xxxxx", ""},
		{"redis password", pgURL, "redis://:" + password + "@" + redisAddr + "/0", true, `"msg":"redis_`, ":xxxxx@", ""},
		{"redis user and password", pgURL, "redis://default:" + password + "@" + redisAddr + "/0", true, `"msg":"redis_`, "default:xxxxx@", ""},
		{"unparsable database URL", "postgres://postgres:" + password + "@" + host + ":port/" + name, "redis://" + redisAddr + "/0", false,
			"DATABASE_URL", "not a PostgreSQL URL", ""},
		{"unparsable key=value", fmt.Sprintf("host=%s port=nope password=%s", host, password), "redis://" + redisAddr + "/0", false,
			"DATABASE_URL", "not a PostgreSQL URL", ""},
		{"unparsable redis URL", pgURL, "redis://:" + password + "@" + redisAddr + "x:port/0", false, "REDIS_URL", "not a valid URL", ""},
		{"redis password with a slash", pgURL, "redis://:s3/cret@" + redisAddr + "/0", false, "REDIS_URL", "not a valid URL", "s3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := []string{"DATABASE_URL=" + tc.databaseURL, "REDIS_URL=" + tc.redisURL,
				"CACHE_NAMESPACE=" + testenv.Namespace(t), "LISTEN_ADDR=127.0.0.1:0", "ADMIN_ADDR=127.0.0.1:0"}
			status, log := runUntilStarted(t, env)
			switch {
			case tc.started && status != 0, !tc.started && status != 2:
				t.Fatalf("exit status %d (want the api to start: %v); log:\n%s", status, tc.started, log)
			case strings.Contains(log, password) || tc.unmaskedFragment != "" && strings.Contains(log, tc.unmaskedFragment):
				t.Errorf("the password shows in the log:\n%s", log)
			}
			line := lineWith(log, tc.event)
			if !strings.Contains(line, tc.masked) {
				t.Errorf("no %s line showing %q; log:\n%s", tc.event, tc.masked, log)
			}
			if tc.started && !strings.Contains(lineWith(log, `"msg":"config"`), tc.masked) && tc.event == "postgresql_connected" {
				t.Errorf("the config event does not show %q; log:\n%s", tc.masked, log)
			}
		})
	}
}

// runUntilStarted runs the api in this process until it logs api_started, then stops it, and
// returns its exit status and everything it wrote.
func runUntilStarted(t *testing.T, env []string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var log testenv.Output
	done := make(chan int, 1)
	go func() { done <- cli.API(ctx, nil, env, &log, &log, run) }()
	deadline := time.After(20 * time.Second)
	for {
		grown := log.Changed()
		if strings.Contains(log.String(), `"msg":"api_started"`) {
			cancel()
		}
		select {
		case status := <-done:
			return status, log.String()
		case <-deadline:
			t.Fatalf("the api neither started nor stopped within 20 s; log:\n%s", log.String())
		case <-grown:
		}
	}
}

// lineWith returns the first line of log containing s.
func lineWith(log, s string) string {
	for line := range strings.Lines(log) {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

// TestSecretsFromFiles: API_TOKEN_FILE, as Kubernetes and Docker mount secrets, gives the token,
// and wins over API_TOKEN: a write with the file's token succeeds, one with the variable's is
// refused. A file that cannot be read stops the api at start (2), naming the setting.
func TestSecretsFromFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "api-token")
	if err := os.WriteFile(tokenFile, []byte("t0ken-from-a-mounted-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, _ := startAPI(t, environ(t, "API_TOKEN_FILE="+tokenFile, "API_TOKEN=t0ken-from-the-environment"))
	post := func(token string) int {
		return testenv.Post(t, "http://"+addr+"/v1/orders", token, `{"orderdate":"2026-11-21","customerid":42,"netamount":5,"tax":0}`).Status
	}
	if status := post("t0ken-from-a-mounted-file"); status != http.StatusCreated {
		t.Errorf("POST with the file's token: %d, want 201", status)
	}
	if status := post("t0ken-from-the-environment"); status != http.StatusForbidden {
		t.Errorf("POST with API_TOKEN's token, API_TOKEN_FILE set: %d, want 403", status)
	}

	var stdout, stderr bytes.Buffer
	missing := filepath.Join(dir, "nope")
	status := cli.API(context.Background(), nil, environ(t, "DATABASE_URL_FILE="+missing), &stdout, &stderr, run)
	if want := "DATABASE_URL_FILE: " + missing + " cannot be read: no such file or directory"; status != 2 || !strings.Contains(stderr.String(), want) {
		t.Errorf("an unreadable DATABASE_URL_FILE: status %d, stderr %q; want 2 and %q", status, stderr.String(), want)
	}
}
