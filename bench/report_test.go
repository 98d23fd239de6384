package bench

import (
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
)

// The performance bars (SPEC, "Performance bars"; docs/performance.md) as this run measured
// them: each benchmark records its own, and make bench ends with them in one table.
var bars struct {
	sync.Mutex
	rows []barRow
}

type barRow struct {
	name            string
	measured, goal  float64
	atMost          bool // the goal is a ceiling, not a floor
	unit, condition string
}

// bar records a ratio measured in this run against the goal it must reach, with what it was
// measured under.
func bar(name string, measured, goal float64, condition string) {
	record(barRow{name: name, measured: measured, goal: goal, unit: "×", condition: condition})
}

// barAtMost records a figure measured in this run against the goal it must not exceed.
func barAtMost(name string, measured, goal float64, unit, condition string) {
	record(barRow{name: name, measured: measured, goal: goal, atMost: true, unit: unit, condition: condition})
}

func record(r barRow) {
	bars.Lock()
	defer bars.Unlock()
	bars.rows = append(bars.rows, r)
}

func TestMain(m *testing.M) {
	code := m.Run()
	printBars(os.Stdout)
	os.Exit(code)
}

// printBars writes the bars recorded as one Markdown table.
func printBars(w io.Writer) {
	bars.Lock()
	defer bars.Unlock()
	if len(bars.rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\n| bar | measured | goal | met | measured under |")
	fmt.Fprintln(w, "| --- | ---: | ---: | :---: | --- |")
	for _, r := range bars.rows {
		goal, met := "≥ ", r.measured >= r.goal
		if r.atMost {
			goal, met = "≤ ", r.measured <= r.goal
		}
		mark := "yes"
		if !met {
			mark = "**no**"
		}
		fmt.Fprintf(w, "| %s | %.2f %s | %s%.2f %s | %s | %s |\n", r.name, r.measured, r.unit, goal, r.goal, r.unit, mark, r.condition)
	}
}
