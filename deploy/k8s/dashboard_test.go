package k8s

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// dashboardJSON returns the dashboard as the rendered ConfigMap holds it for Grafana's sidecar.
func dashboardJSON(t *testing.T) []byte {
	t.Helper()
	configMaps := rendered(t, overlay(t, ""), "ConfigMap")
	i := slices.IndexFunc(configMaps, func(o object) bool { return o.name == "warmcache-dashboard" })
	if i < 0 {
		t.Fatal("no ConfigMap warmcache-dashboard")
	}
	var cm corev1.ConfigMap
	if err := decodeStrict(configMaps[i], &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Error("ConfigMap/warmcache-dashboard: the label grafana_dashboard: \"1\" makes Grafana's sidecar load it")
	}
	return []byte(cm.Data["warmcache.json"])
}

// datasourceInput is the dashboard's one data source: an input that Grafana's import asks for and
// writes in place of ${DS_PROMETHEUS}, and a variable of the same name for the sidecar, which
// loads the JSON as it is and reads no __inputs.
const datasourceInput = "DS_PROMETHEUS"

// TestDashboardImports holds the dashboard to what both ways of loading it need: __inputs and
// __requires for Grafana's import, a data source variable for the sidecar, and every query on
// ${DS_PROMETHEUS}.
func TestDashboardImports(t *testing.T) {
	t.Parallel()
	type named struct {
		Type     string `json:"type"`
		ID       string `json:"id"`
		Name     string `json:"name"`
		PluginID string `json:"pluginId"`
		Query    any    `json:"query"`
	}
	var dashboard struct {
		Inputs     []named `json:"__inputs"`
		Requires   []named `json:"__requires"`
		Templating struct {
			List []named `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Type string `json:"type"`
		} `json:"panels"`
	}
	b := dashboardJSON(t)
	if err := json.Unmarshal(b, &dashboard); err != nil {
		t.Fatalf("the dashboard: %v", err)
	}
	input := named{Type: "datasource", Name: datasourceInput, PluginID: "prometheus"}
	if !slices.ContainsFunc(dashboard.Inputs, func(n named) bool {
		return n.Type == input.Type && n.Name == input.Name && n.PluginID == input.PluginID
	}) {
		t.Errorf("__inputs has no %s input of the prometheus data source: Grafana's import would not ask for it", datasourceInput)
	}
	if !slices.ContainsFunc(dashboard.Templating.List, func(n named) bool {
		return n.Type == "datasource" && n.Name == datasourceInput && n.Query == "prometheus"
	}) {
		t.Errorf("templating has no data source variable %s: the sidecar, which reads no __inputs, would find no data source", datasourceInput)
	}
	required := map[string]bool{"grafana/grafana": true, "datasource/prometheus": true}
	for _, p := range dashboard.Panels {
		required["panel/"+p.Type] = true
	}
	for _, r := range dashboard.Requires {
		delete(required, r.Type+"/"+r.ID)
	}
	for r := range required {
		t.Errorf("__requires does not list %s", r)
	}
	var all any
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	n := 0
	for where, ds := range datasources(all, "") {
		n++
		if ds["type"] != "prometheus" || ds["uid"] != "${"+datasourceInput+"}" {
			t.Errorf("%s.datasource is %v, want the prometheus data source ${%s}", where, ds, datasourceInput)
		}
	}
	if n < len(dashboard.Panels) {
		t.Errorf("the dashboard names %d data sources for %d panels: it was not read", n, len(dashboard.Panels))
	}
}

// datasources returns every datasource of v, a decoded JSON document, by where it is.
func datasources(v any, where string) map[string]map[string]any {
	found := map[string]map[string]any{}
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			if k == "datasource" {
				switch ds := child.(type) {
				case map[string]any:
					found[where] = ds
					continue
				case string: // the old form, a data source by name
					found[where] = map[string]any{"name": ds}
					continue
				}
			}
			for w, ds := range datasources(child, where+"."+k) {
				found[w] = ds
			}
		}
	case []any:
		for i, child := range v {
			for w, ds := range datasources(child, fmt.Sprintf("%s[%d]", where, i)) {
				found[w] = ds
			}
		}
	}
	return found
}
