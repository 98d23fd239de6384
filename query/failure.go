package query

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// sqlStateClasses names the classes of SQLSTATE codes a statement of warmcache's can fail with
// (PostgreSQL's documentation, appendix A).
var sqlStateClasses = map[string]string{
	"0A": "feature not supported",
	"21": "cardinality violation",
	"22": "data exception",
	"23": "integrity constraint violation",
	"25": "invalid transaction state",
	"2F": "SQL routine exception",
	"38": "external routine exception",
	"39": "external routine invocation exception",
	"40": "transaction rollback",
	"42": "syntax error or access rule violation",
	"53": "insufficient resources",
	"54": "program limit exceeded",
	"55": "object not in prerequisite state",
	"57": "operator intervention",
	"58": "system error",
	"72": "snapshot failure",
	"P0": "PL/pgSQL error",
	"XX": "internal error",
}

// Describe says what kind of statement failure err is, by its SQLSTATE class and code ("data
// exception (SQLSTATE 22012)"), in words that carry neither the server's message nor its
// detail: those may quote the rows' data (`invalid input syntax for type integer: "abc"`), and
// belong in logs. ok is false when err is not a statement's failure.
func Describe(err error) (string, bool) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) != 5 {
		return "", false
	}
	class, known := sqlStateClasses[pgErr.Code[:2]]
	if !known {
		class = "an error"
	}
	return class + " (SQLSTATE " + pgErr.Code + ")", true
}
