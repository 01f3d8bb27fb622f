package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// envName is the environment variable of a flag: JIMBUS_HTTP_ADDR for
// http-addr.
func envName(flagName string) string {
	return "JIMBUS_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseWithEnv parses args into fs; then every flag not given on the
// command line takes its value from its environment variable, if set.
func parseWithEnv(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("invalid value %q for %s: %w", v, envName(f.Name), e)
			}
		}
	})
	return err
}

// usageWithEnv prints the flags with their defaults and environment names.
func usageWithEnv(fs *flag.FlagSet, head string) func() {
	return func() {
		out := fs.Output()
		fmt.Fprint(out, head)
		fs.VisitAll(func(f *flag.Flag) {
			name, help := flag.UnquoteUsage(f)
			fmt.Fprintf(out, "  --%s", f.Name)
			if name != "" {
				fmt.Fprintf(out, " %s", name)
			}
			fmt.Fprintf(out, "\n    \t%s (default %q; env %s)\n", help, f.DefValue, envName(f.Name))
		})
	}
}
