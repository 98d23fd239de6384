package cli

import (
	"context"
	"io"
	"log/slog"
	"time"
)

// Logging configures the structured log.
type Logging struct {
	Level  string `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	Format string `env:"LOG_FORMAT" envDefault:"json" help:"json or text"`
}

// Logger returns the logger Logging describes, writing to w.
func (l Logging) Logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		return nil, Errorf("LOG_LEVEL", "%q is not one of debug, info, warn, error", l.Level)
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: redactErrors}
	switch l.Format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, Errorf("LOG_FORMAT", "%q is not json or text", l.Format)
}

// redactErrors masks what an error logged under the key "error" may quote: a password, a card
// number (RedactError). Errors are logged off the hot path, so every one is looked at.
func redactErrors(_ []string, a slog.Attr) slog.Attr {
	if a.Key != "error" {
		return a
	}
	switch v := a.Value.Any().(type) {
	case error:
		return slog.String(a.Key, RedactError(v.Error()))
	case string:
		return slog.String(a.Key, RedactError(v))
	}
	return a
}

// LogConnect tries a dependency once at start and logs the named event <name>_connected, or a
// warning: a process starts even while a server is down, and reconnects when it returns. It
// returns the error, for the caller to tell a server that is down from one that refuses the
// configuration.
func LogConnect(ctx context.Context, logger *slog.Logger, name, url string, ping func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	started := time.Now()
	if err := ping(ctx); err != nil {
		logger.Warn(name+"_unavailable", "url", MaskURL(url), "error", err)
		return err
	}
	logger.Info(name+"_connected", "url", MaskURL(url), "duration_ms", time.Since(started).Milliseconds())
	return nil
}
