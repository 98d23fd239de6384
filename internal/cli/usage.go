package cli

import (
	"flag"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"
)

// usage writes a binary's --help: its synopsis, its flags and the environment variables it
// reads.
func usage(w io.Writer, synopsis string, fs *flag.FlagSet, cfg any) {
	fmt.Fprintln(w, synopsis)
	fmt.Fprintln(w, "\nflags:")
	PrintFlags(w, fs)
	fmt.Fprintln(w, "\nenvironment (durations: 90s, 10m, 2h, 1d, or a number of seconds; docs/configuration.md says more):")
	printSettings(w, cfg)
}

// PrintFlags writes the flags of fs as the synopsis and the docs spell them, with two dashes
// ("--jobs FILE"), and what each does.
func PrintFlags(w io.Writer, fs *flag.FlagSet) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		arg, help := flag.UnquoteUsage(f)
		if arg != "" && arg != "value" {
			arg = " " + strings.ToUpper(arg)
		} else {
			arg = ""
		}
		fmt.Fprintf(tw, "  --%s%s\t%s\n", f.Name, arg, help)
	})
	tw.Flush()
}

// printSettings writes the environment variables cfg (a pointer to a struct with env tags) reads,
// for --help: each with its alias, its default and its help tag, in the struct's order.
func printSettings(w io.Writer, cfg any) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range settingsOf(reflect.TypeOf(cfg).Elem()) {
		help := s.help
		if s.alias != "" {
			help += " (alias " + s.alias + ")"
		}
		if s.hasDefault {
			help += "; default " + s.def
		}
		fmt.Fprintf(tw, "  %s\t%s\n", s.name, help)
	}
	tw.Flush()
}

// setting is an environment variable a configuration reads, as its struct field's tags say.
type setting struct {
	name       string // env
	alias      string // the tutorials' name of it, if any
	help       string // help: what it is, for --help
	doc        string // doc: what else docs/configuration.md says of it
	def        string // envDefault
	hasDefault bool
	secret     bool // secret:"file": NAME_FILE may name a file holding it
}

// settingsOf returns the settings of t, a struct with env tags, in its order, those of
// embedded structs where they are embedded.
func settingsOf(t reflect.Type) []setting {
	aliasOf := map[string]string{}
	for alias, name := range aliases {
		aliasOf[name] = alias
	}
	var list []setting
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if name == "" || name == "-" {
			if f.Type.Kind() == reflect.Struct {
				list = append(list, settingsOf(f.Type)...)
			}
			continue
		}
		def, hasDefault := f.Tag.Lookup("envDefault")
		list = append(list, setting{name: name, alias: aliasOf[name], help: f.Tag.Get("help"), doc: f.Tag.Get("doc"),
			def: def, hasDefault: hasDefault, secret: f.Tag.Get("secret") == "file"})
	}
	return list
}
