package seed

// Sample returns copies of the first n rows of t's source.
func Sample(t Table, n int) [][]any {
	src := t.source()
	var rows [][]any
	for len(rows) < n && src.Next() {
		vals, _ := src.Values()
		rows = append(rows, append([]any(nil), vals...))
	}
	return rows
}
