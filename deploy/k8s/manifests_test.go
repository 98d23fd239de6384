// Package k8s validates warmcache's Kubernetes manifests offline: every kustomization is rendered
// with the kustomize API, every object is decoded strictly into the Kubernetes API types (an
// unknown or misspelt field fails), and the rules of the deployment are checked: pods at the
// restricted Pod Security Standard, probes and resources, references that resolve, no
// credential in a ConfigMap and no example Secret, credentials read from files of a Secret's
// volume, NetworkPolicies that select warmcache's pods only and open the admin listeners to
// Prometheus alone, no replicas an HPA sets, images a local cluster can run, PodMonitors that
// scrape named admin ports, never a Service's; the image is the Makefile's release; the alerting rules are unit-tested with promtool, and they and the dashboard read only
// metrics the binaries export. make k8s-check runs these tests alone.
package k8s

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// kustomization is one way to deploy: a directory, or a kustomization the test writes (base
// with every component, as an overlay of a user would).
type kustomization struct {
	dir string
	// external are the Secrets the deployment expects to be created apart (README: Kubernetes).
	external map[string]bool
	// namespaceWide allows a NetworkPolicy that selects every pod of the namespace.
	namespaceWide bool
}

// kustomizations are every directory holding a kustomization, relative to this one, and the
// base with every component.
func kustomizations(t *testing.T) map[string]kustomization {
	return map[string]kustomization{
		"base":            {dir: "base", external: map[string]bool{"warmcache-secrets": true}},
		"overlays/dev":    {dir: "overlays/dev", namespaceWide: true},
		"with components": {dir: overlay(t, ""), external: map[string]bool{"warmcache-secrets": true}, namespaceWide: true},
	}
}

// renderPatched renders an overlay of the base with more (overlay), and returns its objects and
// what check finds wrong with them, the Secret taken as made outside.
func renderPatched(t *testing.T, more string) ([]object, []error) {
	t.Helper()
	dir := overlay(t, more)
	objects, err := render(dir)
	if err != nil {
		t.Fatal(err)
	}
	return objects, check(objects, kustomization{dir: dir, external: map[string]bool{"warmcache-secrets": true}, namespaceWide: true})
}

// decodeOne decodes the object of kind called name among objects into a T, failing the test when
// there is none.
func decodeOne[T any](t *testing.T, objects []object, kind, name string) T {
	t.Helper()
	var into T
	for _, o := range objects {
		if o.kind == kind && o.name == name {
			if err := decodeStrict(o, &into); err != nil {
				t.Fatal(err)
			}
			return into
		}
	}
	t.Fatalf("no %s/%s", kind, name)
	return into
}

// overlay writes a kustomization of the base, in a namespace of its own, with every component,
// and more (patches, say), and returns its directory.
func overlay(t *testing.T, more string) string {
	t.Helper()
	// Beside base and components, as kustomize takes no absolute path to them.
	dir, err := os.MkdirTemp(".", ".test-overlay-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: shop
resources:
  - ../base
components:
  - ../components/default-deny
  - ../components/monitoring
  - ../components/purge
%s`, more)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestManifests(t *testing.T) {
	t.Parallel()
	for name, k := range kustomizations(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			objects, err := render(k.dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, err := range check(objects, k) {
				t.Error(err)
			}
		})
	}
}

// TestBrokenManifestsAreCaught breaks a copy of the manifests on purpose, one way at a time:
// each break must fail with a message naming the object and the field.
func TestBrokenManifestsAreCaught(t *testing.T) {
	t.Parallel()
	release := makefileRelease(t)
	for _, tc := range []struct {
		name, file, old, new string
		want                 []string
		everywhere           bool // replace every occurrence, not the first
	}{
		{"misspelt field", "base/api.yaml", "readinessProbe:", "readynessProbe:",
			[]string{"Deployment/warmcache-api", "readynessProbe"}, false},
		{"missing runAsNonRoot", "base/warmer.yaml", "runAsNonRoot: true", "# runAsNonRoot removed",
			[]string{"Deployment/warmcache-warmer", "runAsNonRoot"}, true},
		{"runAsNonRoot false for the pod", "base/api.yaml", "        runAsNonRoot: true\n", "        runAsNonRoot: false\n",
			[]string{"Deployment/warmcache-api", "spec.template.spec.securityContext.runAsNonRoot"}, false},
		{"privilege escalation", "base/api.yaml", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true",
			[]string{"Deployment/warmcache-api", "containers[api]", "allowPrivilegeEscalation"}, false},
		{"writable root", "base/warmer.yaml",
			"            readOnlyRootFilesystem: true\n            runAsNonRoot: true\n            capabilities:\n              drop: [\"ALL\"]\n          volumeMounts:",
			"            readOnlyRootFilesystem: false\n            runAsNonRoot: true\n            capabilities:\n              drop: [\"ALL\"]\n          volumeMounts:",
			[]string{"Deployment/warmcache-warmer", "initContainers[migrate]", "readOnlyRootFilesystem"}, false},
		{"token in a ConfigMap", "base/kustomization.yaml", "      - LOG_LEVEL=info\n", "      - LOG_LEVEL=info\n      - API_TOKEN=s3cret\n",
			[]string{"ConfigMap/warmcache-config", "API_TOKEN"}, false},
		{"password in a ConfigMap URL", "base/kustomization.yaml", "      - LOG_LEVEL=info\n",
			"      - LOG_LEVEL=info\n      - DATABASE_URL=postgres://app:hunter2@db/app\n",
			[]string{"ConfigMap/warmcache-config", "DATABASE_URL"}, false},
		{"no startupProbe", "base/api.yaml",
			"          startupProbe:\n            httpGet:\n              path: /healthz\n              port: http\n            periodSeconds: 2\n            failureThreshold: 30\n", "",
			[]string{"Deployment/warmcache-api", "containers[api]", "startupProbe"}, false},
		{"startupProbe too short", "base/api.yaml", "            periodSeconds: 2\n            failureThreshold: 30\n",
			"            periodSeconds: 2\n            failureThreshold: 5\n", []string{"Deployment/warmcache-api", "startupProbe allows 10s"}, false},
		{"no limits", "base/api.yaml", "            limits:\n              cpu: \"2\"\n              memory: 256Mi\n", "",
			[]string{"Deployment/warmcache-api", "containers[api]", "resources.limits"}, false},
		{"replicas fighting the HPA", "base/api.yaml", "spec:\n  # No replicas", "spec:\n  replicas: 3\n  # No replicas",
			[]string{"Deployment/warmcache-api", "spec.replicas", "HorizontalPodAutoscaler/warmcache-api"}, false},
		{"a single api replica", "base/api.yaml", "  minReplicas: 2\n", "  minReplicas: 1\n",
			[]string{"HorizontalPodAutoscaler/warmcache-api", "spec.minReplicas"}, false},
		{"latest image", "base/kustomization.yaml", fmt.Sprintf("newTag: %q", release), "newTag: latest",
			[]string{"Deployment/warmcache-api", "containers[api]", "latest"}, false},
		{"image pulled at every start", "base/warmer.yaml", "imagePullPolicy: IfNotPresent", "imagePullPolicy: Always",
			[]string{"Deployment/warmcache-warmer", "imagePullPolicy"}, false},
		{"namespace-wide policy in the base", "base/networkpolicy.yaml", "# The api: clients",
			"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: deny-all\nspec:\n  podSelector: {}\n  policyTypes: [Ingress]\n---\n# The api: clients",
			[]string{"NetworkPolicy/deny-all", "spec.podSelector", "every pod"}, false},
		{"a policy for other pods", "base/networkpolicy.yaml", "      app.kubernetes.io/name: warmcache\n      app.kubernetes.io/component: warmer",
			"      app.kubernetes.io/name: web\n      app.kubernetes.io/component: warmer", []string{"NetworkPolicy/warmcache-warmer", "warmcache's pods only"}, false},
		{"a Secret in the base", "base/api.yaml", "---\napiVersion: v1\nkind: Service",
			"---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: warmcache-example\nstringData:\n  API_TOKEN: CHANGE-ME\n---\napiVersion: v1\nkind: Service",
			[]string{"Secret/warmcache-example", "API_TOKEN"}, false},
		{"unknown Secret", "base/warmer.yaml", "secretName: warmcache-secrets", "secretName: warmcache-secret",
			[]string{"Deployment/warmcache-warmer", "Secret warmcache-secret,"}, false},
		{"credentials in the environment", "base/api.yaml", "                name: warmcache-config\n",
			"                name: warmcache-config\n            - secretRef:\n                name: warmcache-secrets\n",
			[]string{"Deployment/warmcache-api", "containers[api].envFrom", "as files"}, false},
		{"a credential file outside the Secret's volume", "base/warmer.yaml", "value: /run/secrets/warmcache/REDIS_URL",
			"value: /etc/warmcache/REDIS_URL", []string{"Deployment/warmcache-warmer", "initContainers[migrate].env[REDIS_URL_FILE]"}, false},
		{"a key the volume does not hold", "base/api.yaml", "              - {key: REDIS_URL, path: REDIS_URL}\n", "",
			[]string{"Deployment/warmcache-api", "containers[api].env[REDIS_URL_FILE]"}, false},
		{"the file of another key", "base/api.yaml", "value: /run/secrets/warmcache/API_TOKEN", "value: /run/secrets/warmcache/REDIS_URL",
			[]string{"Deployment/warmcache-api", "containers[api].env[API_TOKEN_FILE]", "key REDIS_URL"}, false},
		{"no token file", "base/api.yaml", "            - name: API_TOKEN_FILE\n              value: /run/secrets/warmcache/API_TOKEN\n", "",
			[]string{"Deployment/warmcache-api", "containers[api]", "API_TOKEN_FILE"}, false},
		{"an admin port open to all", "base/networkpolicy.yaml", "    - ports:\n        - port: 8000\n",
			"    - ports:\n        - port: 8000\n        - port: 9090\n",
			[]string{"NetworkPolicy/warmcache-api", "spec.ingress[0]", "9090", "Deployment/warmcache-api", "every source"}, false},
		{"a policy open on every port", "base/networkpolicy.yaml", "    - ports:\n        - port: 8000\n          protocol: TCP\n", "    - {}\n",
			[]string{"NetworkPolicy/warmcache-api", "spec.ingress[0]", "9090", "every source"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := copyTree(t)
			path := filepath.Join(dir, tc.file)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte(tc.old)) {
				t.Fatalf("%s does not contain %q", tc.file, tc.old)
			}
			n := 1
			if tc.everywhere {
				n = -1
			}
			if err := os.WriteFile(path, bytes.Replace(b, []byte(tc.old), []byte(tc.new), n), 0o644); err != nil {
				t.Fatal(err)
			}
			objects, err := render(filepath.Join(dir, "base"))
			var errs []error
			if err != nil {
				errs = []error{err}
			} else {
				errs = check(objects, kustomizations(t)["base"])
			}
			for _, err := range errs {
				if containsAll(err.Error(), tc.want) {
					return
				}
			}
			t.Errorf("no error names %v; got %v", tc.want, errs)
		})
	}
}

// object is one rendered object: its kind, name and JSON.
type object struct {
	kind, name string
	json       []byte
}

func (o object) String() string { return o.kind + "/" + o.name }

// render builds the kustomization in dir with the kustomize API.
func render(dir string) ([]object, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resources, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var objects []object
	for _, r := range resources.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			return nil, err
		}
		objects = append(objects, object{kind: r.GetKind(), name: r.GetName(), json: b})
	}
	return objects, nil
}

// decodeStrict decodes an object into its API type, refusing fields the type does not have.
func decodeStrict(o object, into any) error {
	dec := json.NewDecoder(bytes.NewReader(o.json))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return fmt.Errorf("%s: %w", o, err)
	}
	return nil
}

// minReplicas are the fewest replicas the HorizontalPodAutoscalers may scale to: the api runs at
// least two.
var minReplicas = map[string]int32{"warmcache-api": 2}

// startupAllowance is how long a Deployment's containers that need a startupProbe get to start
// (failureThreshold × periodSeconds): the api's, which its liveness probe would otherwise kill
// during a slow start.
var startupAllowance = map[string]time.Duration{"warmcache-api": 60 * time.Second}

// check decodes every object and applies the rules; each error names the object and the field.
func check(objects []object, k kustomization) []error {
	var errs []error
	fail := func(o object, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", o, fmt.Sprintf(format, args...)))
	}
	secrets, configMaps := maps.Clone(k.external), map[string]bool{}
	if secrets == nil {
		secrets = map[string]bool{}
	}
	var pods []podOf
	var decoded []any
	replicas := map[string]object{} // Deployments that set spec.replicas
	for _, o := range objects {
		var v any
		switch o.kind {
		case "Deployment":
			d := &appsv1.Deployment{}
			v = d
			if err := decodeStrict(o, d); err == nil {
				pods = append(pods, podOf{o, d.Spec.Template.Labels, d.Spec.Template.Spec})
				if d.Spec.Replicas != nil {
					replicas[o.name] = o
				}
			}
		case "Job":
			j := &batchv1.Job{}
			v = j
			if err := decodeStrict(o, j); err == nil {
				pods = append(pods, podOf{o, j.Spec.Template.Labels, j.Spec.Template.Spec})
			}
		case "Service":
			v = &corev1.Service{}
		case "Secret":
			sec := &corev1.Secret{}
			v = sec
			secrets[o.name] = true
			if err := decodeStrict(o, sec); err == nil {
				errs = append(errs, checkSecret(o, sec)...)
			}
		case "ConfigMap":
			cm := &corev1.ConfigMap{}
			v = cm
			configMaps[o.name] = true
			if err := decodeStrict(o, cm); err == nil {
				for key, value := range cm.Data {
					if looksLikeCredential(key, value) {
						fail(o, "data.%s looks like a credential: keep it in a Secret", key)
					}
				}
			}
		case "Namespace":
			v = &corev1.Namespace{}
		case "HorizontalPodAutoscaler":
			v = &autoscalingv2.HorizontalPodAutoscaler{}
		case "PodDisruptionBudget":
			v = &policyv1.PodDisruptionBudget{}
		case "NetworkPolicy":
			np := &networkingv1.NetworkPolicy{}
			v = np
			if err := decodeStrict(o, np); err == nil {
				errs = append(errs, checkNetworkPolicy(o, np, k.namespaceWide)...)
			}
		case "PodMonitor":
			v = &monitoringv1.PodMonitor{}
		case "PrometheusRule":
			v = &monitoringv1.PrometheusRule{}
		default:
			fail(o, "kind %s is not one this test knows how to check", o.kind)
			continue
		}
		if err := decodeStrict(o, v); err != nil {
			errs = append(errs, err)
			continue
		}
		decoded = append(decoded, v)
	}
	for _, p := range pods {
		errs = append(errs, checkPod(p, secrets, configMaps)...)
	}
	errs = append(errs, checkReferences(decoded, pods, replicas)...)
	return errs
}

// placeholder is a value copied from an example.
var placeholder = regexp.MustCompile(`(?i)change[-_ ]?me|replace[-_ ]?me|placeholder`)

// checkSecret refuses Secrets that would deploy an example's values: the api refuses them too
// (API_TOKEN), at start, but a manifest should not get that far.
func checkSecret(o object, sec *corev1.Secret) []error {
	var errs []error
	values := maps.Clone(sec.StringData)
	if values == nil {
		values = map[string]string{}
	}
	for key, b := range sec.Data {
		values[key] = string(b)
	}
	for key, value := range values {
		if placeholder.MatchString(value) {
			errs = append(errs, fmt.Errorf("%s: %s holds a placeholder: deploy no example Secret, create the real one (README: Kubernetes)", o, key))
		}
	}
	if token, ok := values["API_TOKEN"]; ok && len(token) < 16 {
		errs = append(errs, fmt.Errorf("%s: API_TOKEN is shorter than the 16 characters the api requires", o))
	}
	return errs
}

// warmcachePods are the values of app.kubernetes.io/name of warmcache's pods: its own, and the
// development overlay's PostgreSQL and Redis.
var warmcachePods = regexp.MustCompile(`^warmcache(-postgres|-redis)?$`)

// checkNetworkPolicy holds a policy to warmcache's pods: one that selects every pod of the
// namespace (a default-deny) only where the kustomization allows it, any other selecting
// app.kubernetes.io/name warmcache (or the dev overlay's servers) and nothing else.
func checkNetworkPolicy(o object, np *networkingv1.NetworkPolicy, namespaceWide bool) []error {
	sel := np.Spec.PodSelector
	if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
		if namespaceWide {
			return nil
		}
		return []error{fmt.Errorf("%s: spec.podSelector selects every pod of the namespace: the base must select warmcache's pods only "+
			"(a namespace-wide policy belongs in components/default-deny)", o)}
	}
	names := []string{sel.MatchLabels["app.kubernetes.io/name"]}
	for _, e := range sel.MatchExpressions {
		if e.Key == "app.kubernetes.io/name" && e.Operator == metav1.LabelSelectorOpIn {
			names = append(names, e.Values...)
		}
	}
	names = slices.DeleteFunc(names, func(n string) bool { return n == "" })
	if len(names) == 0 || slices.ContainsFunc(names, func(n string) bool { return !warmcachePods.MatchString(n) }) {
		return []error{fmt.Errorf("%s: spec.podSelector must select warmcache's pods only (app.kubernetes.io/name: warmcache), not %v", o, names)}
	}
	return nil
}

// imageTag is an image with a tag other than latest (or a digest).
var imageTag = regexp.MustCompile(`(:[\w][\w.-]*|@sha256:[0-9a-f]{64})$`)

type podOf struct {
	owner  object
	labels map[string]string
	spec   corev1.PodSpec
}

// checkPod applies the restricted Pod Security Standard and the product's rules to a pod template.
func checkPod(p podOf, secrets, configMaps map[string]bool) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", p.owner, fmt.Sprintf(format, args...)))
	}
	const pod = "spec.template.spec"
	psc := p.spec.SecurityContext
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		fail("%s.securityContext.seccompProfile.type must be RuntimeDefault", pod)
	}
	podNonRoot := psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot
	if psc != nil && psc.RunAsNonRoot != nil && !*psc.RunAsNonRoot {
		fail("%s.securityContext.runAsNonRoot must not be false", pod)
	}
	if psc != nil && psc.RunAsUser != nil && *psc.RunAsUser == 0 {
		fail("%s.securityContext.runAsUser must not be 0", pod)
	}
	all := append(slices.Clone(p.spec.InitContainers), p.spec.Containers...)
	for i, c := range all {
		kind := "containers"
		if i < len(p.spec.InitContainers) {
			kind = "initContainers"
		}
		where := fmt.Sprintf("%s.%s[%s]", pod, kind, c.Name)
		sc := c.SecurityContext
		if sc == nil {
			fail("%s.securityContext is missing", where)
			continue
		}
		if !podNonRoot && (sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) {
			fail("%s.securityContext.runAsNonRoot must be true (here or for the pod)", where)
		}
		if sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot {
			fail("%s.securityContext.runAsNonRoot must not be false", where)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			fail("%s.securityContext.allowPrivilegeEscalation must be false", where)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			fail("%s.securityContext.readOnlyRootFilesystem must be true", where)
		}
		if sc.Privileged != nil && *sc.Privileged {
			fail("%s.securityContext.privileged must not be true", where)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			fail("%s.securityContext.capabilities must drop ALL and add none", where)
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[r]; !ok {
				fail("%s.resources.requests.%s is missing", where, r)
			}
			if _, ok := c.Resources.Limits[r]; !ok {
				fail("%s.resources.limits.%s is missing", where, r)
			}
		}
		if !imageTag.MatchString(c.Image) || strings.HasSuffix(c.Image, ":latest") {
			fail("%s.image %s has no tag, or latest: a cluster pulls it at every start (kind cannot) and it changes under you", where, c.Image)
		}
		if c.ImagePullPolicy == corev1.PullAlways {
			fail("%s.imagePullPolicy is Always: a local cluster (kind) cannot pull an image loaded into it", where)
		}
		if kind == "containers" && p.owner.kind == "Deployment" && (c.ReadinessProbe == nil || c.LivenessProbe == nil) {
			fail("%s needs a readinessProbe and a livenessProbe", where)
		}
		if want, ok := startupAllowance[p.owner.name]; ok && kind == "containers" && p.owner.kind == "Deployment" {
			if c.StartupProbe == nil {
				fail("%s needs a startupProbe that allows %s to start", where, want)
			} else if got := probeAllowance(c.StartupProbe); got < want {
				fail("%s.startupProbe allows %s to start (failureThreshold × periodSeconds), want at least %s", where, got, want)
			}
		}
		for _, from := range c.EnvFrom {
			if from.SecretRef != nil && !secrets[from.SecretRef.Name] {
				fail("%s.envFrom refers to Secret %s, which is not in the manifests", where, from.SecretRef.Name)
			}
			if from.ConfigMapRef != nil && !configMaps[from.ConfigMapRef.Name] {
				fail("%s.envFrom refers to ConfigMap %s, which is not in the manifests", where, from.ConfigMapRef.Name)
			}
		}
		for _, env := range c.Env {
			if ref := env.ValueFrom; ref != nil && ref.SecretKeyRef != nil && !secrets[ref.SecretKeyRef.Name] {
				fail("%s.env[%s] refers to Secret %s, which is not in the manifests", where, env.Name, ref.SecretKeyRef.Name)
			}
			if env.Value != "" && !isSecretFile(env.Name) && looksLikeCredential(env.Name, env.Value) {
				fail("%s.env[%s] holds a credential in plain text: take it from a Secret", where, env.Name)
			}
		}
	}
	errs = append(errs, checkSecretFiles(p, secrets)...)
	for _, v := range p.spec.Volumes {
		if v.ConfigMap != nil && !configMaps[v.ConfigMap.Name] {
			fail("%s.volumes[%s] refers to ConfigMap %s, which is not in the manifests", pod, v.Name, v.ConfigMap.Name)
		}
		if v.HostPath != nil {
			fail("%s.volumes[%s].hostPath is not allowed", pod, v.Name)
		}
	}
	return errs
}

// probeAllowance is how long a probe lets a container fail before it acts, with Kubernetes's
// defaults (a period of 10 s, 3 failures).
func probeAllowance(p *corev1.Probe) time.Duration {
	period, failures := p.PeriodSeconds, p.FailureThreshold
	if period == 0 {
		period = 10
	}
	if failures == 0 {
		failures = 3
	}
	return time.Duration(period*failures) * time.Second
}

// checkReferences checks that Services, HPAs, PDBs and PodMonitors point at pods that exist, and
// that no Deployment an HPA scales sets its replicas (each apply would reset them).
func checkReferences(decoded []any, pods []podOf, replicas map[string]object) []error {
	var errs []error
	selected := func(sel map[string]string) []podOf {
		var matched []podOf
		for _, p := range pods {
			if labels.SelectorFromSet(sel).Matches(labels.Set(p.labels)) {
				matched = append(matched, p)
			}
		}
		return matched
	}
	deployments := map[string]bool{}
	for _, p := range pods {
		if p.owner.kind == "Deployment" {
			deployments[p.owner.name] = true
		}
	}
	var services []*corev1.Service
	for _, v := range decoded {
		if svc, ok := v.(*corev1.Service); ok {
			services = append(services, svc)
		}
	}
	for _, v := range decoded {
		switch o := v.(type) {
		case *networkingv1.NetworkPolicy:
			errs = append(errs, checkAdminIngress(o, pods)...)
		case *corev1.Service:
			if len(selected(o.Spec.Selector)) == 0 {
				errs = append(errs, fmt.Errorf("Service/%s: spec.selector matches no pod", o.Name))
			}
		case *autoscalingv2.HorizontalPodAutoscaler:
			target := o.Spec.ScaleTargetRef
			if target.Kind != "Deployment" || !deployments[target.Name] {
				errs = append(errs, fmt.Errorf("HorizontalPodAutoscaler/%s: spec.scaleTargetRef names no Deployment", o.Name))
			}
			if d, ok := replicas[target.Name]; ok {
				errs = append(errs, fmt.Errorf("%s: spec.replicas is set, but HorizontalPodAutoscaler/%s sets the replicas: every apply would reset them", d, o.Name))
			}
			if want, ok := minReplicas[target.Name]; ok && (o.Spec.MinReplicas == nil || *o.Spec.MinReplicas < want) {
				errs = append(errs, fmt.Errorf("HorizontalPodAutoscaler/%s: spec.minReplicas must be at least %d", o.Name, want))
			}
		case *policyv1.PodDisruptionBudget:
			if o.Spec.Selector == nil || len(selected(o.Spec.Selector.MatchLabels)) == 0 {
				errs = append(errs, fmt.Errorf("PodDisruptionBudget/%s: spec.selector matches no pod", o.Name))
			}
		case *monitoringv1.PodMonitor:
			errs = append(errs, checkPodMonitor(o, selected(o.Spec.Selector.MatchLabels), services)...)
		}
	}
	return errs
}

// checkPodMonitor checks that a PodMonitor scrapes a named port of the pods it selects, never one
// a Service exposes (the metrics are the admin listener's, not the public port's), and leaves
// the target's labels (job, instance, ...) to Prometheus: warmcache's metrics carry none of them
// (their job is warmcache_job), and honorLabels would let a metric's label overwrite the target's.
func checkPodMonitor(pm *monitoringv1.PodMonitor, pods []podOf, services []*corev1.Service) []error {
	var errs []error
	if len(pods) == 0 {
		return []error{fmt.Errorf("PodMonitor/%s: spec.selector matches no pod", pm.Name)}
	}
	for i, e := range pm.Spec.PodMetricsEndpoints {
		where := fmt.Sprintf("PodMonitor/%s: spec.podMetricsEndpoints[%d]", pm.Name, i)
		if e.HonorLabels {
			errs = append(errs, fmt.Errorf("%s.honorLabels must not be true: a metric's labels would overwrite the target's (job, instance), and up{job=...} would break", where))
		}
		for _, p := range pods {
			if e.Port == nil || !slices.ContainsFunc(p.spec.Containers, func(c corev1.Container) bool {
				return slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == *e.Port })
			}) {
				errs = append(errs, fmt.Errorf("%s.port names no port of %s", where, p.owner))
			}
			for _, svc := range services {
				if e.Port != nil && servesPort(svc, p, *e.Port) {
					errs = append(errs, fmt.Errorf("%s.port %s is the one Service/%s exposes: scrape the admin port, /metrics is not served to clients", where, *e.Port, svc.Name))
				}
			}
		}
	}
	return errs
}

var (
	credentialKey = regexp.MustCompile(`(?i)(password|passwd|secret|token|api[_-]?key|credential)`)
	urlWithSecret = regexp.MustCompile(`://[^/@\s]*:[^/@\s]+@`)
)

// looksLikeCredential reports a key named like a secret, or a URL carrying a password.
func looksLikeCredential(key, value string) bool {
	return credentialKey.MatchString(key) || urlWithSecret.MatchString(value)
}

func TestLooksLikeCredential(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		key, value string
		want       bool
	}{
		{"API_TOKEN", "x", true},
		{"REDIS_PASSWORD", "x", true},
		{"DATABASE_URL", "postgres://app:hunter2@db:5432/app", true},
		{"REDIS_URL", "rediss://:hunter2@cache:6380/0", true},
		{"DATABASE_URL", "postgres://app@db:5432/app", false},
		{"CACHE_TTL", "10m", false},
		{"jobs.yaml", "jobs:\n  orders_total:\n    schedule: \"@every 1m\"\n", false},
	} {
		if got := looksLikeCredential(tc.key, tc.value); got != tc.want {
			t.Errorf("looksLikeCredential(%q, %q) = %v", tc.key, tc.value, got)
		}
	}
}

// copyTree copies the manifests into a temporary directory, for a test to break.
func copyTree(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || strings.HasSuffix(path, ".go") {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".test-overlay-") {
			return filepath.SkipDir // another test's, removed when it ends
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, path), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, path), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
