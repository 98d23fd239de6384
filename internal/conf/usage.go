package conf

import (
	"flag"
	"fmt"
	"io"
	"reflect"
	"runtime/debug"
	"strings"
	"text/tabwriter"
)

// Usage writes a binary's --help: its synopsis, its flags and the environment variables it
// reads.
func Usage(w io.Writer, synopsis string, fs *flag.FlagSet, cfg any) {
	fmt.Fprintln(w, synopsis)
	fmt.Fprintln(w, "\nflags:")
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
	fmt.Fprintln(w, "\nenvironment (durations: 90s, 10m, or a number of seconds; the README says more):")
	PrintSettings(w, cfg)
}

// PrintSettings writes the environment variables cfg (a pointer to a struct with env tags) reads,
// for --help: each with its alias, its default and its help tag, in the struct's order.
func PrintSettings(w io.Writer, cfg any) {
	aliasOf := map[string]string{}
	for alias, name := range aliases {
		aliasOf[name] = alias
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
			if name == "" {
				if f.Type.Kind() == reflect.Struct {
					walk(f.Type)
				}
				continue
			}
			help := f.Tag.Get("help")
			if alias := aliasOf[name]; alias != "" {
				help += " (alias " + alias + ")"
			}
			if def, ok := f.Tag.Lookup("envDefault"); ok {
				help += "; default " + def
			}
			fmt.Fprintf(tw, "  %s\t%s\n", name, help)
		}
	}
	walk(reflect.TypeOf(cfg).Elem())
	tw.Flush()
}

// Version says which build this is: the module's version, or the commit it was built from.
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	version := info.Main.Version
	var revision, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if revision != "" && (version == "" || version == "(devel)") {
		version = revision[:min(len(revision), 12)] + modified
	}
	return version + " (" + info.GoVersion + ")"
}
