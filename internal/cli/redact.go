package cli

import (
	"net/url"
	"regexp"
	"strings"
)

// masked replaces every secret this package hides.
const masked = "xxxxx"

// secretParams are the query parameters and key=value settings that carry a secret: libpq's
// password and sslpassword, and the names other tools give tokens.
var secretParams = []string{"password", "sslpassword", "passwd", "pass", "pwd", "secret", "token",
	"access_token", "auth_token", "api_key", "apikey"}

var (
	alternatives = strings.Join(secretParams, "|")
	// userinfo is a URL's user:password@, wherever a URL appears in text. The password runs to
	// the last @ of the word, as url.Parse reads it, so that an @ or a / in an unescaped password
	// (which makes the URL unparsable) leaks nothing either.
	userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@"'` + "`" + `]*:)\S*@`)
	// queryParam is ?password=... or &password=... in a URL.
	queryParam = regexp.MustCompile(`(?i)([?&](?:` + alternatives + `)=)[^&#\s"'` + "`" + `]*`)
	// keyValue is password=... in a key=value connection string (libpq's DSN), quoted or not.
	keyValue = regexp.MustCompile(`(?i)(\b(?:` + alternatives + `)\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s"'` + "`" + `]+)`)
)

// Redact returns text with every password and token it carries masked: the password of any URL
// in it (postgres://user:xxxxx@host), secret query parameters (?password=xxxxx), and secret
// settings of key=value connection strings (password=xxxxx). It is meant for anything logged or
// printed that may hold a connection string: a setting's value, or an error that quotes one.
func Redact(text string) string {
	text = userinfo.ReplaceAllString(text, "${1}"+masked+"@")
	text = queryParam.ReplaceAllString(text, "${1}"+masked)
	return keyValue.ReplaceAllString(text, "${1}"+masked)
}

// cardNumber is a run of 13 to 19 digits, as card numbers are, alone or in groups separated by
// single spaces or dashes.
var cardNumber = regexp.MustCompile(`\b(?:\d[ -]?){9,15}(\d{4})\b`)

// RedactError returns an error's text for a log: Redact's, and every number long enough to be
// a card's cut to its last four digits. Drivers quote the values that made a statement fail
// ("invalid input syntax for type integer: \"4111111111111111\""), and a user's SQL may read
// card numbers.
func RedactError(text string) string {
	return cardNumber.ReplaceAllString(Redact(text), "****${1}")
}

// MaskURL returns a connection string (a URL, or PostgreSQL's key=value form) with its secrets
// masked, for logging the effective configuration. A URL keeps its exact form but for the
// password and secret parameters; anything else goes through Redact.
func MaskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return Redact(raw)
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), masked)
	}
	// The query is masked as text, which keeps its parameters in their order.
	u.RawQuery = queryParam.ReplaceAllString("&"+u.RawQuery, "${1}"+masked)[1:]
	return u.String()
}
