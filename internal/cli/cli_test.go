package cli_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/warmcache/warmcache/internal/cli"
)

type config struct {
	DatabaseURL string        `env:"DATABASE_URL"`
	TTL         time.Duration `env:"CACHE_TTL" envDefault:"5m"`
	cli.Logging
}

func TestLoad(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		environ []string
		want    config
	}{
		{"defaults", nil, config{TTL: 5 * time.Minute, Logging: cli.Logging{Level: "info", Format: "json"}}},
		{"tutorial aliases", []string{"PG_SERVICE_URI=postgres://a", "CACHE_TIMEOUT_SECONDS=30"},
			config{DatabaseURL: "postgres://a", TTL: 30 * time.Second, Logging: cli.Logging{Level: "info", Format: "json"}}},
		{"warmcache names win over aliases", []string{"PG_SERVICE_URI=postgres://alias", "DATABASE_URL=postgres://name", "CACHE_TTL=90s", "CACHE_TIMEOUT_SECONDS=30"},
			config{DatabaseURL: "postgres://name", TTL: 90 * time.Second, Logging: cli.Logging{Level: "info", Format: "json"}}},
		{"embedded structs", []string{"LOG_LEVEL=debug", "LOG_FORMAT=text"},
			config{TTL: 5 * time.Minute, Logging: cli.Logging{Level: "debug", Format: "text"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got config
			if err := cli.Load(&got, tc.environ); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Load = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestLoadNamesTheSetting(t *testing.T) {
	t.Parallel()
	for environ, setting := range map[string]string{
		"CACHE_TTL=soon":             "CACHE_TTL",
		"CACHE_TIMEOUT_SECONDS=soon": "CACHE_TTL",
	} {
		var c config
		err := cli.Load(&c, []string{environ})
		var confErr *cli.Error
		if !errors.As(err, &confErr) || confErr.Setting != setting || !strings.HasPrefix(err.Error(), setting+": ") {
			t.Errorf("%s: error %v, want a cli.Error naming %s", environ, err, setting)
		}
	}
}

func TestLogger(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		logging cli.Logging
		setting string
	}{
		{cli.Logging{Level: "debug", Format: "json"}, ""},
		{cli.Logging{Level: "WARN", Format: "text"}, ""},
		{cli.Logging{Level: "verbose", Format: "json"}, "LOG_LEVEL"},
		{cli.Logging{Level: "info", Format: "xml"}, "LOG_FORMAT"},
	} {
		_, err := tc.logging.Logger(nil)
		var confErr *cli.Error
		if tc.setting == "" && err != nil || tc.setting != "" && (!errors.As(err, &confErr) || confErr.Setting != tc.setting) {
			t.Errorf("%+v: error %v, want one naming %q", tc.logging, err, tc.setting)
		}
	}
}

// TestLoggedErrorsAreRedacted: whatever an error quotes, a password or a card number, the log
// keeps none; other attributes are left as they are.
func TestLoggedErrorsAreRedacted(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"json", "text"} {
		var out bytes.Buffer
		logger, err := cli.Logging{Level: "info", Format: format}.Logger(&out)
		if err != nil {
			t.Fatal(err)
		}
		logger.Error("job_failed", "error", errors.New(`ERROR: invalid input syntax for type integer: "4111111111111111" (SQLSTATE 22P02)`))
		logger.Warn("redis_unavailable", "error", "dial postgres://app:secret@db/app: card 4111-1111-1111-1234 or 4111 1111 1111 1234")
		logger.Info("order_created", "orderid", 4111111111111111, "note", "4111111111111111")
		got := out.String()
		for _, leak := range []string{`"4111111111111111" (SQL`, "secret", "4111-1111", "4111 1111"} {
			if strings.Contains(got, leak) {
				t.Errorf("%s log holds %q:\n%s", format, leak, got)
			}
		}
		for _, kept := range []string{"****1111", "****1234", "app:xxxxx@db", "orderid=4111111111111111", "note=4111111111111111"} {
			if format == "json" {
				kept = strings.NewReplacer("orderid=", `"orderid":`, "note=4111111111111111", `"note":"4111111111111111"`).Replace(kept)
			}
			if !strings.Contains(got, kept) {
				t.Errorf("%s log lacks %q:\n%s", format, kept, got)
			}
		}
	}
}

func TestMaskURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://user:secret@db:5432/app?sslmode=require":          "postgres://user:xxxxx@db:5432/app?sslmode=require",
		"rediss://:secret@cache:6380/0":                               "rediss://:xxxxx@cache:6380/0",
		"redis://cache:6379/0":                                        "redis://cache:6379/0",
		"postgres://user@db/app?sslmode=require&password=secret":      "postgres://user@db/app?sslmode=require&password=xxxxx",
		"postgres://db/app?PASSWORD=secret&sslpassword=secret&x=1":    "postgres://db/app?PASSWORD=xxxxx&sslpassword=xxxxx&x=1",
		"host=db user=app password=secret dbname=app":                 "host=db user=app password=xxxxx dbname=app",
		"host=db password = 'a secret \\' phrase' dbname=app":         "host=db password = xxxxx dbname=app",
		"host=db dbname=app":                                          "host=db dbname=app",
		"https://purger:secret@cdn.example/purge?token=secret&keep=1": "https://purger:xxxxx@cdn.example/purge?token=xxxxx&keep=1",
		"": "",
	} {
		if got := cli.MaskURL(in); got != want || strings.Contains(got, "secret") {
			t.Errorf("MaskURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRedact covers text that merely holds connection strings: errors that quote them, whole
// or in pieces, and URLs that do not parse.
func TestRedact(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`parse "redis://:secret@host:notaport/0": invalid port ":notaport" after host`: `parse "redis://:xxxxx@host:notaport/0": invalid port ":notaport" after host`,
		`dial redis://user:sec/ret@host:6379/0 failed`:                                 `dial redis://user:xxxxx@host:6379/0 failed`,
		`bad url postgres://u:p@ss@w0rd@db/app`:                                        `bad url postgres://u:xxxxx@db/app`,
		"cannot parse `host=db password=secret port=x`: invalid port":                  "cannot parse `host=db password=xxxxx port=x`: invalid port",
		`connect postgres://u@db/app?connect_timeout=2&password=secret: refused`:       `connect postgres://u@db/app?connect_timeout=2&password=xxxxx refused`,
		`two: redis://:secret@a/0 and rediss://:secret@b/0`:                            `two: redis://:xxxxx@a/0 and rediss://:xxxxx@b/0`,
		`nothing secret: redis://cache:6379/0, ttl=10m`:                                `nothing secret: redis://cache:6379/0, ttl=10m`,
	} {
		if got := cli.Redact(in); got != want || strings.Contains(got, "secret") && !strings.Contains(in, "nothing secret") {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzLoadDuration(f *testing.F) {
	for _, s := range []string{"300", "90s", "5m", "-1", "1h30m", "", "soon", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		if strings.ContainsAny(value, "\x00=") {
			return
		}
		var c config
		err := cli.Load(&c, []string{"CACHE_TTL=" + value})
		var confErr *cli.Error
		if err != nil && (!errors.As(err, &confErr) || confErr.Setting != "CACHE_TTL") {
			t.Fatalf("CACHE_TTL=%q: error %v does not name the setting", value, err)
		}
	})
}

func TestParseBytes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]cli.Bytes{
		"0": 0, "512": 512, "512B": 512, "64MiB": 64 << 20, "64 MiB": 64 << 20, "2GiB": 2 << 30, "1KiB": 1024,
		"100kB": 100_000, "100KB": 100_000, "5MB": 5_000_000, "1GB": 1_000_000_000,
	} {
		if got, err := cli.ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1MiB", "1.5GiB", "64 megs", "99999999999GiB"} {
		if got, err := cli.ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) = %d, want an error", in, got)
		}
	}
}
