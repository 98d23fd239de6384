// Command render prints a kustomization of deploy/k8s as YAML, rendered with the kustomize API
// the tests use (the version go.mod pins), for a machine without kubectl or kustomize, or to
// hand the manifests to another tool (docs/development.md: podman kube play):
//
//	cd deploy/k8s && go run ./render overlays/dev
package main

import (
	"fmt"
	"os"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: render DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	opts := krusty.MakeDefaultOptions()
	opts.Reorder = krusty.ReorderOptionLegacy // as kubectl kustomize: Namespaces first, then the rest by kind
	resources, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	b, err := resources.AsYaml()
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(b)
	return err
}
