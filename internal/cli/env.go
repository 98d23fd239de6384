package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/warmcache/warmcache/jobs"
)

// aliases maps the tutorials' names onto warmcache's. The warmcache name wins when both are set.
var aliases = map[string]string{
	"PG_SERVICE_URI":        "DATABASE_URL",
	"VALKEY_SERVICE_URI":    "REDIS_URL",
	"CACHE_TIMEOUT_SECONDS": "CACHE_TTL",
	"METRICS_ADDR":          "ADMIN_ADDR",           // the warmer's name before the admin listener
	"WARMER_DATABASE_URL":   "DATABASE_REPLICA_URL", // the warmer's name before the api read replicas too
}

// Error is a configuration error: the setting and what is wrong with it. Binaries exit with
// status 2 on it.
type Error struct {
	Setting string
	Err     error
}

// Error says the setting before each line of what is wrong: a jobs file's errors are a line
// each.
func (e *Error) Error() string {
	return e.Setting + ": " + strings.ReplaceAll(e.Err.Error(), "\n", "\n"+e.Setting+": ")
}
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error for setting.
func Errorf(setting, format string, args ...any) error {
	return &Error{Setting: setting, Err: fmt.Errorf(format, args...)}
}

// Load fills cfg, a pointer to a struct with env tags, from environ (os.Environ's form).
func Load(cfg any, environ []string) error {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	for alias, name := range aliases {
		for _, suffix := range []string{"", "_FILE"} { // a secret's file too: WARMER_DATABASE_URL_FILE
			if v, ok := vars[alias+suffix]; ok {
				if _, set := vars[name+suffix]; !set {
					vars[name+suffix] = v
				}
			}
		}
	}
	if err := readSecretFiles(reflect.TypeOf(cfg).Elem(), vars); err != nil {
		return err
	}
	err := env.ParseWithOptions(cfg, env.Options{
		Environment: vars,
		FuncMap: map[reflect.Type]env.ParserFunc{
			reflect.TypeFor[time.Duration](): parseDuration,
			reflect.TypeFor[Bytes]():         parseBytes,
		},
	})
	if err == nil {
		return nil
	}
	// env names struct fields and Go types in its errors; say which variable and what it wants.
	var parseErr env.ParseError
	if errors.As(err, &parseErr) {
		name := envName(cfg, parseErr.Name)
		return &Error{Setting: name, Err: wanted(parseErr.Type, vars[name], parseErr.Err)}
	}
	return err
}

// readSecretFiles reads the secret settings (a secret:"file" tag) that name a file in NAME_FILE,
// as Kubernetes and Docker mount their secrets: the file's content, less a final line break, is
// the setting's value, and wins over NAME. An unreadable file is an error of NAME_FILE; what it
// holds is never quoted.
func readSecretFiles(t reflect.Type, vars map[string]string) error {
	for _, s := range settingsOf(t) {
		path, ok := vars[s.name+"_FILE"]
		if !s.secret || !ok {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			var pathErr *fs.PathError
			if errors.As(err, &pathErr) {
				err = pathErr.Err
			}
			return Errorf(s.name+"_FILE", "%s cannot be read: %w", path, err)
		}
		vars[s.name] = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	return nil
}

// wanted says what a setting of type t wants, when value is not it. The errors of this
// package's own parsers say so already; strconv's do not.
func wanted(t reflect.Type, value string, err error) error {
	if t == reflect.TypeFor[time.Duration]() || t == reflect.TypeFor[Bytes]() {
		return err
	}
	switch t.Kind() {
	case reflect.Bool:
		return fmt.Errorf("%q is not true or false", value)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Errorf("%q is not a whole number", value)
	case reflect.Map:
		return fmt.Errorf("%q is not a list of name:value pairs separated by commas", value)
	}
	return err
}

func parseDuration(s string) (any, error) { return jobs.ParseDuration(s) }

// Bytes is a size setting: a number of bytes, or a number with a unit, KiB, MiB and GiB being
// powers of 1024 and kB, MB and GB of 1000 ("64MiB").
type Bytes uint64

var byteUnits = []struct {
	suffix string
	size   uint64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}

// ParseBytes reads a Bytes setting.
func ParseBytes(s string) (Bytes, error) {
	number, unit := strings.TrimSpace(s), uint64(1)
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(number, u.suffix); ok {
			number, unit = strings.TrimSpace(n), u.size
			break
		}
	}
	n, err := strconv.ParseUint(number, 10, 64)
	if err != nil || n > math.MaxUint64/unit {
		return 0, fmt.Errorf("%q is not a size (a number of bytes, or with KiB, MiB, GiB, kB, MB, GB)", s)
	}
	return Bytes(n * unit), nil
}

func parseBytes(s string) (any, error) { return ParseBytes(s) }

// envName finds the env tag of the field called field anywhere in cfg's struct.
func envName(cfg any, field string) string {
	var find func(t reflect.Type) string
	find = func(t reflect.Type) string {
		for f := range t.Fields() {
			if f.Name == field {
				name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
				return name
			}
			if f.Type.Kind() == reflect.Struct {
				if name := find(f.Type); name != "" {
					return name
				}
			}
		}
		return ""
	}
	if name := find(reflect.TypeOf(cfg).Elem()); name != "" {
		return name
	}
	return field
}

// loadLocation loads the IANA time zone named by setting's value.
func loadLocation(setting, name string) (*time.Location, error) {
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, Errorf(setting, "%q is not a known time zone (want an IANA name such as Europe/Paris)", name)
	}
	return loc, nil
}
