// Package k8s validates warmcache's Kubernetes manifests offline: every kustomization is rendered
// with the kustomize API, every object is decoded strictly into the Kubernetes API types (an
// unknown or misspelt field fails), and the rules of the deployment are checked: pods at the
// restricted Pod Security Standard, probes and resources, references that resolve, and no
// credential in a ConfigMap. make k8s-check runs these tests alone.
package k8s

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// kustomizations are every directory holding a kustomization, relative to this one.
var kustomizations = []string{"base", "overlays/dev"}

func TestManifests(t *testing.T) {
	t.Parallel()
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			objects, err := render(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, err := range check(objects) {
				t.Error(err)
			}
		})
	}
}

// TestBrokenManifestsAreCaught breaks a copy of the manifests on purpose, one way at a time:
// each break must fail with a message naming the object and the field.
func TestBrokenManifestsAreCaught(t *testing.T) {
	t.Parallel()
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
		{"no limits", "base/api.yaml", "            limits:\n              cpu: \"2\"\n              memory: 256Mi\n", "",
			[]string{"Deployment/warmcache-api", "containers[api]", "resources.limits"}, false},
		{"single api replica", "base/api.yaml", "  replicas: 2\n", "  replicas: 1\n",
			[]string{"Deployment/warmcache-api", "spec.replicas"}, false},
		{"unknown Secret", "base/warmer.yaml", "                name: warmcache-secrets\n          readinessProbe",
			"                name: warmcache-secret\n          readinessProbe", []string{"Deployment/warmcache-warmer", "warmcache-secret"}, false},
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
				errs = check(objects)
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

// deployment's rules: the api runs at least two replicas.
var minReplicas = map[string]int32{"warmcache-api": 2}

// check decodes every object and applies the rules; each error names the object and the field.
func check(objects []object) []error {
	var errs []error
	fail := func(o object, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", o, fmt.Sprintf(format, args...)))
	}
	secrets, configMaps := map[string]bool{}, map[string]bool{}
	var pods []podOf
	var decoded []any
	for _, o := range objects {
		var v any
		switch o.kind {
		case "Deployment":
			d := &appsv1.Deployment{}
			v = d
			if err := decodeStrict(o, d); err == nil {
				pods = append(pods, podOf{o, d.Spec.Template.Labels, d.Spec.Template.Spec})
				if want, ok := minReplicas[o.name]; ok && (d.Spec.Replicas == nil || *d.Spec.Replicas < want) {
					fail(o, "spec.replicas must be at least %d", want)
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
			v = &corev1.Secret{}
			secrets[o.name] = true
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
			v = &networkingv1.NetworkPolicy{}
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
	errs = append(errs, checkReferences(decoded, pods)...)
	return errs
}

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
		if kind == "containers" && p.owner.kind == "Deployment" && (c.ReadinessProbe == nil || c.LivenessProbe == nil) {
			fail("%s needs a readinessProbe and a livenessProbe", where)
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
			if env.Value != "" && looksLikeCredential(env.Name, env.Value) {
				fail("%s.env[%s] holds a credential in plain text: take it from a Secret", where, env.Name)
			}
		}
	}
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

// checkReferences checks that Services, the HPA and the PDB point at pods that exist.
func checkReferences(decoded []any, pods []podOf) []error {
	var errs []error
	selects := func(sel map[string]string) bool {
		return slices.ContainsFunc(pods, func(p podOf) bool { return labels.SelectorFromSet(sel).Matches(labels.Set(p.labels)) })
	}
	deployments := map[string]bool{}
	for _, p := range pods {
		if p.owner.kind == "Deployment" {
			deployments[p.owner.name] = true
		}
	}
	for _, v := range decoded {
		switch o := v.(type) {
		case *corev1.Service:
			if !selects(o.Spec.Selector) {
				errs = append(errs, fmt.Errorf("Service/%s: spec.selector matches no pod", o.Name))
			}
		case *autoscalingv2.HorizontalPodAutoscaler:
			if o.Spec.ScaleTargetRef.Kind != "Deployment" || !deployments[o.Spec.ScaleTargetRef.Name] {
				errs = append(errs, fmt.Errorf("HorizontalPodAutoscaler/%s: spec.scaleTargetRef names no Deployment", o.Name))
			}
		case *policyv1.PodDisruptionBudget:
			if o.Spec.Selector == nil || !selects(o.Spec.Selector.MatchLabels) {
				errs = append(errs, fmt.Errorf("PodDisruptionBudget/%s: spec.selector matches no pod", o.Name))
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
