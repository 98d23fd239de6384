package testenv

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var updateMetrics = flag.Bool("update-metrics", false, "rewrite the lists of exported metrics in deploy/k8s/components/monitoring/metrics")

// MetricsList is the path of the list of the metrics a binary exports, which the offline checks
// of deploy/k8s hold the dashboard and the alerting rules to.
func MetricsList(binary string) string {
	return filepath.Join(RepoRoot(), "deploy", "k8s", "components", "monitoring", "metrics", binary+".txt")
}

// Scrape reads a binary's /metrics.
func Scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	return parseMetrics(t, HTTPGet(t, url).Body)
}

func parseMetrics(t testing.TB, body string) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return families
}

// CheckMetrics scrapes url (a binary's /metrics) and checks that what it exports is exactly the
// binary's list of metrics, one family a line: name, type and label names. With -update-metrics
// it rewrites the list instead. It also checks the histograms' buckets: each bound a number of
// at most six significant digits, as written, never float noise such as 0.015000000000000001.
// It returns the scraped families.
func CheckMetrics(t testing.TB, url, binary string) map[string]*dto.MetricFamily {
	t.Helper()
	body := HTTPGet(t, url).Body
	families := parseMetrics(t, body)
	for _, le := range regexp.MustCompile(`le="([^"]+)"`).FindAllStringSubmatch(body, -1) {
		if digits := strings.TrimLeft(strings.NewReplacer(".", "", "-", "").Replace(strings.SplitN(le[1], "e", 2)[0]), "0"); len(digits) > 6 {
			t.Errorf("a histogram bucket bound %s: write buckets out, not computed", le[1])
		}
	}
	var lines []string
	for name, f := range families {
		labels := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		if f.GetType() == dto.MetricType_HISTOGRAM {
			labels["le"] = true
		}
		names := make([]string, 0, len(labels))
		for l := range labels {
			names = append(names, l)
		}
		slices.Sort(names)
		lines = append(lines, strings.TrimSpace(fmt.Sprintf("%s %s %s", name, strings.ToLower(f.GetType().String()), strings.Join(names, ","))))
	}
	slices.Sort(lines)
	got := strings.Join(lines, "\n") + "\n"
	path := MetricsList(binary)
	if *updateMetrics {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return families
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update-metrics to write it)", err)
	}
	if got != string(want) {
		t.Errorf("the %s exports other metrics than %s lists (check the dashboard and the rules, then run the test with -update-metrics):\n--- listed\n%s--- exported\n%s",
			binary, path, want, got)
	}
	return families
}
