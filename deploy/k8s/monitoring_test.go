package k8s

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"
)

const monitoring = "components/monitoring"

// rendered renders the kustomization in dir and returns its objects of kind.
func rendered(t *testing.T, dir, kind string) []object {
	t.Helper()
	objects, err := render(dir)
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(objects, func(o object) bool { return o.kind != kind })
}

// prometheusRule returns the rendered PrometheusRule.
func prometheusRule(t *testing.T) *monitoringv1.PrometheusRule {
	t.Helper()
	rules := rendered(t, overlay(t, ""), "PrometheusRule")
	if len(rules) != 1 {
		t.Fatalf("want one PrometheusRule, got %d", len(rules))
	}
	var rule monitoringv1.PrometheusRule
	if err := decodeStrict(rules[0], &rule); err != nil {
		t.Fatal(err)
	}
	return &rule
}

// TestAlertingRules runs the rules' unit tests (tests/rules_test.yaml) with promtool, Debian's
// prometheus package, which make test installs: without it the test fails.
func TestAlertingRules(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: run make k8s-check, which installs it (scripts/servers install), or apt-get install prometheus")
	}
	dir := t.TempDir()
	groups, err := yaml.Marshal(map[string]any{"groups": prometheusRule(t).Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join(monitoring, "tests", "rules_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"rules.yaml": groups, "rules_test.yaml": tests} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "rules_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Every alert has a unit test.
	for _, g := range prometheusRule(t).Spec.Groups {
		for _, r := range g.Rules {
			if !strings.Contains(string(tests), "alertname: "+r.Alert+"\n") {
				t.Errorf("alert %s has no unit test in tests/rules_test.yaml", r.Alert)
			}
		}
	}
}

// exported reads the lists of the metrics the binaries export (written by their tests: see
// testenv.CheckMetrics), by family name, with their label names.
func exported(t *testing.T) map[string][]string {
	t.Helper()
	families := map[string][]string{}
	for _, binary := range []string{"api", "warmer"} {
		b, err := os.ReadFile(filepath.Join(monitoring, "metrics", binary+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(b)) {
			fields := strings.Fields(line)
			var labels []string
			if len(fields) > 2 {
				labels = strings.Split(fields[2], ",")
			}
			families[fields[0]] = append(families[fields[0]], labels...)
			if fields[1] == "histogram" || fields[1] == "summary" {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					families[fields[0]+suffix] = append(families[fields[0]+suffix], labels...)
				}
			}
		}
	}
	return families
}

// targetLabels are the labels Prometheus gives every series of a target.
var targetLabels = []string{"namespace", "pod", "instance", "container", "job"}

// TestMetricsCarryNoTargetLabel: a metric's own label named like one Prometheus gives the target
// collides with it. Scraped, it becomes exported_job (say), or, with honorLabels, overwrites the
// target's and breaks up{job=...}: warmcache's job is warmcache_job.
func TestMetricsCarryNoTargetLabel(t *testing.T) {
	t.Parallel()
	for name, labels := range exported(t) {
		for _, l := range labels {
			if slices.Contains(targetLabels, l) {
				t.Errorf("metric %s has a label %s, which Prometheus gives every series of a target: name it warmcache_%s", name, l, l)
			}
		}
	}
}

// grafanaVariable is a dashboard variable or Grafana's own ($__rate_interval, ${namespace}).
var grafanaVariable = regexp.MustCompile(`\$(\{[a-zA-Z_]+\}|__[a-z_]+|[a-zA-Z_]+)`)

// checkExpr parses a PromQL expression and checks that each metric it reads is one the binaries
// export, with the labels it matches on. where names the expression for errors.
func checkExpr(where, expr string, families map[string][]string) []error {
	// Grafana's variables stand for a duration or a label value.
	expr = grafanaVariable.ReplaceAllStringFunc(expr, func(v string) string {
		if strings.Contains(v, "interval") {
			return "5m"
		}
		return "x"
	})
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return []error{fmt.Errorf("%s: %w", where, err)}
	}
	var errs []error
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		labels, known := families[vs.Name]
		if !known {
			errs = append(errs, fmt.Errorf("%s: metric %s is exported by neither binary", where, vs.Name))
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name != "__name__" && !slices.Contains(labels, m.Name) && !slices.Contains(targetLabels, m.Name) {
				errs = append(errs, fmt.Errorf("%s: metric %s has no label %s", where, vs.Name, m.Name))
			}
		}
		return nil
	})
	return errs
}

// TestMonitoringReadsExportedMetrics holds the alerting rules and the dashboard to the metrics
// the binaries export: each expression parses, and reads metrics and labels that exist.
func TestMonitoringReadsExportedMetrics(t *testing.T) {
	t.Parallel()
	families := exported(t)
	for _, g := range prometheusRule(t).Spec.Groups {
		for _, r := range g.Rules {
			for _, err := range checkExpr("alert "+r.Alert, r.Expr.String(), families) {
				t.Error(err)
			}
		}
	}
	var dashboard struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(dashboardJSON(t), &dashboard); err != nil {
		t.Fatalf("the dashboard: %v", err)
	}
	n := 0
	for _, p := range dashboard.Panels {
		for _, target := range p.Targets {
			n++
			for _, err := range checkExpr("panel "+p.Title, target.Expr, families) {
				t.Error(err)
			}
		}
	}
	for _, v := range dashboard.Templating.List {
		q, ok := v.Query.(map[string]any)
		if !ok {
			continue
		}
		// label_values(metric, label): the metric is an expression of its own.
		if m := regexp.MustCompile(`^label_values\((.+), (\w+)\)$`).FindStringSubmatch(fmt.Sprint(q["query"])); m != nil {
			for _, err := range checkExpr("variable "+v.Name, m[1], families) {
				t.Error(err)
			}
		}
	}
	if n < 10 {
		t.Errorf("the dashboard has %d queries: it was not read", n)
	}
}

// TestServedAgeThresholdIsTheTTL: the alert on reads older than the TTL reads the bucket at the
// base's CACHE_TTL.
func TestServedAgeThresholdIsTheTTL(t *testing.T) {
	t.Parallel()
	var ttl time.Duration
	for _, o := range rendered(t, "base", "ConfigMap") {
		var cm corev1.ConfigMap
		if err := decodeStrict(o, &cm); err == nil && cm.Data["CACHE_TTL"] != "" {
			if ttl, err = time.ParseDuration(cm.Data["CACHE_TTL"]); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, g := range prometheusRule(t).Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "WarmcacheServedAgeOverTTL" && !strings.Contains(r.Expr.String(), fmt.Sprintf(`le="%g"`, ttl.Seconds())) {
				t.Errorf("WarmcacheServedAgeOverTTL does not read the bucket of CACHE_TTL (%s): %s", ttl, r.Expr.String())
			}
		}
	}
}

// TestEgressPortsConfigurable applies the README's patch for a managed PostgreSQL and Redis on
// other ports: the policies then allow those ports, and only those. The warmer may reach the
// caches it purges with the purge component only.
func TestEgressPortsConfigurable(t *testing.T) {
	t.Parallel()
	dir := overlay(t, `patches:
  - target: {kind: NetworkPolicy, name: warmcache-egress-postgresql}
    patch: |-
      - op: replace
        path: /spec/egress/0/ports
        value: [{port: 25060, protocol: TCP}]
  - target: {kind: NetworkPolicy, name: warmcache-egress-redis}
    patch: |-
      - op: replace
        path: /spec/egress/0/ports
        value: [{port: 25061, protocol: TCP}]
`)
	want := map[string][]int32{"warmcache-egress-postgresql": {25060}, "warmcache-egress-redis": {25061},
		"warmcache-egress-purge": {80, 443, 6081}}
	base := map[string][]int32{"warmcache-egress-postgresql": {5432}, "warmcache-egress-redis": {6379, 6380, 26379},
		"warmcache-egress-purge": nil}
	for d, ports := range map[string]map[string][]int32{"base": base, dir: want} {
		got := map[string][]int32{}
		for _, o := range rendered(t, d, "NetworkPolicy") {
			var np networkingv1.NetworkPolicy
			if err := decodeStrict(o, &np); err != nil {
				t.Fatal(err)
			}
			if _, ok := ports[np.Name]; ok {
				for _, e := range np.Spec.Egress {
					for _, p := range e.Ports {
						got[np.Name] = append(got[np.Name], p.Port.IntVal)
					}
				}
			}
		}
		for name, p := range ports {
			if !slices.Equal(got[name], p) {
				t.Errorf("%s: NetworkPolicy/%s allows ports %v, want %v", d, name, got[name], p)
			}
		}
	}
}
