package k8s

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// secretSettings are the settings the binaries read from a file when NAME_FILE names one
// (internal/cli: the secret:"file" settings).
var secretSettings = []string{"API_TOKEN", "DATABASE_URL", "REDIS_URL", "WARMER_DATABASE_URL"}

// secretFiles are the credentials each Deployment's containers read, all of them from files of
// the Secret's volume and none from the environment: a variable shows in the pod's spec, in
// /proc/<pid>/environ and in what a crash dumps; a file in a volume of the Secret does not. The
// dev overlay's seed Job is not held to it: the generator reads DATABASE_URL alone.
var secretFiles = map[string][]string{
	"warmcache-api":    {"API_TOKEN", "DATABASE_URL", "REDIS_URL"},
	"warmcache-warmer": {"DATABASE_URL", "REDIS_URL"},
}

// isSecretFile reports a NAME_FILE variable of a secret setting: its value is a path, not the
// credential.
func isSecretFile(env string) bool {
	name, ok := strings.CutSuffix(env, "_FILE")
	return ok && slices.Contains(secretSettings, name)
}

// checkSecretFiles checks the credentials a pod reads from files: each Secret volume is of a
// Secret in the manifests; each NAME_FILE names the file of the key NAME in a Secret volume its
// container mounts; and the containers of secretFiles' Deployments read their credentials that
// way alone, every one of them.
func checkSecretFiles(p podOf, secrets map[string]bool) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", p.owner, fmt.Sprintf(format, args...)))
	}
	const pod = "spec.template.spec"
	volumes := map[string]*corev1.SecretVolumeSource{}
	for _, v := range p.spec.Volumes {
		if v.Secret == nil {
			continue
		}
		volumes[v.Name] = v.Secret
		if !secrets[v.Secret.SecretName] {
			fail("%s.volumes[%s] refers to Secret %s, which is not in the manifests", pod, v.Name, v.Secret.SecretName)
		}
	}
	want, filesOnly := secretFiles[p.owner.name]
	for i, c := range append(slices.Clone(p.spec.InitContainers), p.spec.Containers...) {
		kind := "containers"
		if i < len(p.spec.InitContainers) {
			kind = "initContainers"
		}
		where := fmt.Sprintf("%s.%s[%s]", pod, kind, c.Name)
		files := map[string]bool{}
		for _, env := range c.Env {
			if !isSecretFile(env.Name) {
				continue
			}
			name := strings.TrimSuffix(env.Name, "_FILE")
			key, ok := secretKeyAt(c, volumes, env.Value)
			switch {
			case !ok:
				fail("%s.env[%s] names %s, which is no file of a Secret volume the container mounts", where, env.Name, env.Value)
			case key != name:
				fail("%s.env[%s] names %s, the file of key %s, not %s", where, env.Name, env.Value, key, name)
			default:
				files[name] = true
			}
		}
		if !filesOnly {
			continue
		}
		for _, from := range c.EnvFrom {
			if from.SecretRef != nil {
				fail("%s.envFrom takes Secret %s into the environment: mount it and read the credentials as files (NAME_FILE)", where, from.SecretRef.Name)
			}
		}
		for _, env := range c.Env {
			if env.ValueFrom != nil && env.ValueFrom.SecretKeyRef != nil {
				fail("%s.env[%s] takes a Secret's key into the environment: read it as a file (%s_FILE)", where, env.Name, env.Name)
			}
		}
		for _, name := range want {
			if !files[name] {
				fail("%s reads no %s_FILE: its credentials come as files of the Secret's volume", where, name)
			}
		}
	}
	return errs
}

// secretKeyAt returns the key of the Secret volume file at path, among the container's mounts.
func secretKeyAt(c corev1.Container, volumes map[string]*corev1.SecretVolumeSource, file string) (string, bool) {
	for _, m := range c.VolumeMounts {
		s, ok := volumes[m.Name]
		if !ok || path.Dir(path.Clean(file)) != path.Clean(m.MountPath) {
			continue
		}
		base := path.Base(file)
		if len(s.Items) == 0 {
			return base, true // every key, as a file of its name
		}
		for _, item := range s.Items {
			if item.Path == base {
				return item.Key, true
			}
		}
	}
	return "", false
}

// TestReplicaPatch applies the patch of docs/operations.md (The Secret) that gives the warmer
// WARMER_DATABASE_URL: the checks pass, and the warmer reads it from its file.
func TestReplicaPatch(t *testing.T) {
	t.Parallel()
	objects, errs := renderPatched(t, `patches:
  - target: {kind: Deployment, name: warmcache-warmer}
    patch: |-
      - op: add
        path: /spec/template/spec/volumes/1/secret/items/-
        value: {key: WARMER_DATABASE_URL, path: WARMER_DATABASE_URL}
      - op: add
        path: /spec/template/spec/containers/0/env/-
        value: {name: WARMER_DATABASE_URL_FILE, value: /run/secrets/warmcache/WARMER_DATABASE_URL}
`)
	for _, err := range errs {
		t.Error(err)
	}
	d := decodeOne[appsv1.Deployment](t, objects, "Deployment", "warmcache-warmer")
	c := d.Spec.Template.Spec.Containers[0]
	volumes := map[string]*corev1.SecretVolumeSource{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			volumes[v.Name] = v.Secret
		}
	}
	if key, ok := secretKeyAt(c, volumes, "/run/secrets/warmcache/WARMER_DATABASE_URL"); !ok || key != "WARMER_DATABASE_URL" {
		t.Errorf("containers[%s] does not mount WARMER_DATABASE_URL at the file WARMER_DATABASE_URL_FILE names", c.Name)
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "WARMER_DATABASE_URL_FILE" }) {
		t.Errorf("containers[%s] sets no WARMER_DATABASE_URL_FILE", c.Name)
	}
}
