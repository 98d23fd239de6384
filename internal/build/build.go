// Package build says which build of warmcache is running: the version and the commit stamped
// at build time (make build, make image: -ldflags -X), or what Go recorded of the module and its
// repository when they were not stamped.
package build

import (
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// version and revision are set at build time:
//
//	-ldflags "-X github.com/warmcache/warmcache/internal/build.version=0.2.0
//	          -X github.com/warmcache/warmcache/internal/build.revision=<commit>"
var version, revision string

// Info is a build's identity.
type Info struct {
	// Version is the release (0.2.0) or development build (0.2.0-dev.<commit>) stamped at build
	// time; else Go's module version, or "(devel)".
	Version string
	// Revision is the commit built; empty when unknown.
	Revision string
	// GoVersion is the Go release the binary was built with.
	GoVersion string
}

// Read returns the running binary's build.
func Read() Info {
	info := Info{Version: version, Revision: revision, GoVersion: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return fill(info)
	}
	info.GoVersion = bi.GoVersion
	if info.Version == "" {
		info.Version = bi.Main.Version
	}
	if info.Revision == "" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				info.Revision = s.Value
			}
		}
	}
	return fill(info)
}

func fill(info Info) Info {
	if info.Version == "" {
		info.Version = "(devel)"
	}
	return info
}

// String is the build as --version prints it: "0.2.0 (go1.26.8, commit 1a2b3c4d5e6f)".
func (i Info) String() string {
	s := i.Version + " (" + i.GoVersion
	if i.Revision != "" {
		s += ", commit " + i.Revision[:min(len(i.Revision), 12)]
	}
	return s + ")"
}

// Collector returns warmcache_build_info: 1, labelled with the version, the revision and the Go
// version, as Prometheus's own build_info metrics are.
func Collector() prometheus.Collector {
	i := Read()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "warmcache_build_info",
		Help:        "The running build: its version, commit and Go release, as labels; always 1.",
		ConstLabels: prometheus.Labels{"version": i.Version, "revision": i.Revision, "goversion": i.GoVersion},
	})
	g.Set(1)
	return g
}
