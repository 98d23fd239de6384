package k8s

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// adminPort is the name of the port of each binary's admin listener (ADMIN_ADDR): /metrics, the
// status page, Go's profiles. adminPorts are its number in each Deployment.
const adminPort = "admin"

var adminPorts = map[string]int32{"warmcache-api": 9090, "warmcache-warmer": 9091}

// prometheusPods is the label of the pods the Prometheus Operator runs: the peers the admin
// ports admit.
var prometheusPods = map[string]string{"app.kubernetes.io/name": "prometheus"}

// TestAdminListeners holds the manifests to the binaries' two listeners: each Deployment's admin
// port is named admin and is ADMIN_ADDR's; the PodMonitors scrape it, never the api's public
// port; the warmer is ready by its /readyz; the NetworkPolicies open the api's public port to
// every client and the admin ports to Prometheus alone.
func TestAdminListeners(t *testing.T) {
	t.Parallel()
	objects, err := render(overlay(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	containers := map[string]corev1.Container{} // each Deployment's main container
	policies := map[string]networkingv1.NetworkPolicy{}
	monitors := map[string]monitoringv1.PodMonitor{}
	for _, o := range objects {
		var err error
		switch o.kind {
		case "Deployment":
			var d appsv1.Deployment
			if err = decodeStrict(o, &d); err == nil {
				containers[d.Name] = d.Spec.Template.Spec.Containers[0]
			}
		case "NetworkPolicy":
			var np networkingv1.NetworkPolicy
			if err = decodeStrict(o, &np); err == nil {
				policies[np.Name] = np
			}
		case "PodMonitor":
			var pm monitoringv1.PodMonitor
			if err = decodeStrict(o, &pm); err == nil {
				monitors[pm.Name] = pm
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for deployment, port := range adminPorts {
		c := containers[deployment]
		if got := containerPort(c, adminPort); got != port {
			t.Errorf("Deployment/%s: containers[%s] has port %s %d, want %d", deployment, c.Name, adminPort, got, port)
		}
		if i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "ADMIN_ADDR" }); i < 0 || c.Env[i].Value != fmt.Sprintf(":%d", port) {
			t.Errorf("Deployment/%s: containers[%s] sets no ADMIN_ADDR of :%d, its admin port", deployment, c.Name, port)
		}
		pm, ok := monitors[deployment]
		if !ok || len(pm.Spec.PodMetricsEndpoints) != 1 {
			t.Fatalf("no PodMonitor/%s with one endpoint", deployment)
		}
		if e := pm.Spec.PodMetricsEndpoints[0]; e.Port == nil || *e.Port != adminPort || e.Path != "/metrics" {
			t.Errorf("PodMonitor/%s scrapes %v %s, want port %s /metrics", deployment, e.Port, e.Path, adminPort)
		}
		np := policies[deployment]
		if peers, ok := admitted(np, port); !ok || len(peers) == 0 || slices.ContainsFunc(peers, func(p networkingv1.NetworkPolicyPeer) bool {
			return p.PodSelector == nil || !labels.Equals(p.PodSelector.MatchLabels, prometheusPods)
		}) {
			t.Errorf("NetworkPolicy/%s must admit port %d from Prometheus's pods (%v) alone, admits %v", np.Name, port, prometheusPods, peers)
		}
	}
	api := containers["warmcache-api"]
	if got := containerPort(api, "http"); got != 8000 {
		t.Errorf("Deployment/warmcache-api: containers[api] has port http %d, want 8000", got)
	}
	if peers, ok := admitted(policies["warmcache-api"], 8000); !ok || len(peers) != 0 {
		t.Errorf("NetworkPolicy/warmcache-api must admit port 8000 from every client, admits %v", peers)
	}
	warmer := containers["warmcache-warmer"]
	for probe, want := range map[*corev1.Probe]string{warmer.ReadinessProbe: "/readyz", warmer.LivenessProbe: "/healthz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want || probe.HTTPGet.Port != intstr.FromString(adminPort) {
			t.Errorf("Deployment/warmcache-warmer: a probe is not %s on port %s: %+v", want, adminPort, probe)
		}
	}
}

// TestMetricsNotScrapedOnThePublicPort points the api's PodMonitor at the public port: the
// check refuses it.
func TestMetricsNotScrapedOnThePublicPort(t *testing.T) {
	t.Parallel()
	_, errs := renderPatched(t, `patches:
  - target: {kind: PodMonitor, name: warmcache-api}
    patch: |-
      - op: replace
        path: /spec/podMetricsEndpoints/0/port
        value: http
`)
	if !slices.ContainsFunc(errs, func(err error) bool {
		return containsAll(err.Error(), []string{"PodMonitor/warmcache-api", "port http", "Service/warmcache-api"})
	}) {
		t.Errorf("no error names the PodMonitor scraping the Service's port; got %v", errs)
	}
}

// containerPort returns the number of c's port called name, or 0.
func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// admitted returns the peers np's ingress rules admit on port, none meaning every source, and
// whether any rule admits it.
func admitted(np networkingv1.NetworkPolicy, port int32) (peers []networkingv1.NetworkPolicyPeer, ok bool) {
	for _, rule := range np.Spec.Ingress {
		if slices.ContainsFunc(rule.Ports, func(p networkingv1.NetworkPolicyPort) bool { return p.Port != nil && p.Port.IntVal == port }) {
			ok = true
			peers = append(peers, rule.From...)
		}
	}
	return peers, ok
}

// servesPort reports whether svc sends its clients to p's port called name.
func servesPort(svc *corev1.Service, p podOf, name string) bool {
	if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(p.labels)) {
		return false
	}
	for _, sp := range svc.Spec.Ports {
		if sp.TargetPort.Type == intstr.String {
			if sp.TargetPort.StrVal == name {
				return true
			}
			continue
		}
		target := sp.TargetPort.IntVal
		if target == 0 {
			target = sp.Port // no targetPort: the Service's own
		}
		if slices.ContainsFunc(p.spec.Containers, func(c corev1.Container) bool { return containerPort(c, name) == target }) {
			return true
		}
	}
	return false
}

// checkAdminIngress refuses an ingress rule that opens a pod's admin port to every source: the
// rule names no peer (or one of every address), and names the port, or no port at all.
func checkAdminIngress(np *networkingv1.NetworkPolicy, pods []podOf) []error {
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		return []error{fmt.Errorf("NetworkPolicy/%s: spec.podSelector: %w", np.Name, err)}
	}
	var errs []error
	for _, p := range pods {
		if !sel.Matches(labels.Set(p.labels)) {
			continue
		}
		for _, c := range p.spec.Containers {
			port := containerPort(c, adminPort)
			if port == 0 {
				continue
			}
			for i, rule := range np.Spec.Ingress {
				opensPort := len(rule.Ports) == 0 || slices.ContainsFunc(rule.Ports, func(rp networkingv1.NetworkPolicyPort) bool {
					return rp.Port != nil && (rp.Port.IntVal == port || rp.Port.StrVal == adminPort)
				})
				if opensPort && (len(rule.From) == 0 || slices.ContainsFunc(rule.From, everyAddress)) {
					errs = append(errs, fmt.Errorf("NetworkPolicy/%s: spec.ingress[%d] opens port %d, the admin listener of %s, to every source: admit Prometheus alone (from)",
						np.Name, i, port, p.owner))
				}
			}
		}
	}
	return errs
}

// everyAddress reports a peer that admits any address.
func everyAddress(peer networkingv1.NetworkPolicyPeer) bool {
	return peer.IPBlock != nil && strings.HasSuffix(peer.IPBlock.CIDR, "/0")
}

// TestPrometheusPatch applies the patch of docs/operations.md (The admin listeners) for a
// Prometheus labelled otherwise: the api's admin port then admits that namespace alone, and the
// public port is as it was.
func TestPrometheusPatch(t *testing.T) {
	t.Parallel()
	objects, errs := renderPatched(t, `patches:
  - target: {kind: NetworkPolicy, name: warmcache-api}
    patch: |-
      - op: replace
        path: /spec/ingress/1/from
        value: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]
`)
	for _, err := range errs {
		t.Error(err)
	}
	np := decodeOne[networkingv1.NetworkPolicy](t, objects, "NetworkPolicy", "warmcache-api")
	peers, ok := admitted(np, 9090)
	if !ok || len(peers) != 1 || peers[0].NamespaceSelector == nil || peers[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
		t.Errorf("NetworkPolicy/warmcache-api admits port 9090 from %v, want the namespace monitoring", peers)
	}
	if peers, ok := admitted(np, 8000); !ok || len(peers) != 0 {
		t.Errorf("NetworkPolicy/warmcache-api admits port 8000 from %v, want every client", peers)
	}
}
