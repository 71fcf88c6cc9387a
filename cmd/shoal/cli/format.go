package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// listFlags are the output flags of ls and ps commands.
type listFlags struct {
	format string
	quiet  bool
}

// listFormatHelp says what --format takes on a list.
const listFormatHelp = "table (the default), json (the objects in full, numbers as numbers) or a Go template: " +
	"'{{.Name}} {{.Image}}', 'table {{.ID}}\\t{{.Name}}' (with a header row), '{{json .}}'"

func (l *listFlags) register(fs *pflag.FlagSet, quietHelp string) {
	fs.StringVar(&l.format, "format", "", listFormatHelp)
	fs.BoolVarP(&l.quiet, "quiet", "q", false, quietHelp)
}

// check refuses a format that is neither table, json nor a valid
// template, before anything is asked of the daemon.
func (l *listFlags) check() error {
	switch {
	case l.format == "" || l.format == "table" || l.format == "json":
		return nil
	case !strings.Contains(l.format, "{{"):
		return fmt.Errorf("--format %q: use table, json or a Go template such as '{{.ID}} {{.Name}}'", l.format)
	}
	_, err := parseTemplate(l.format)
	return err
}

// A column is a field of a list's rows: the name a --format template
// gives it (docker's), its header in a table and its value for an object
// (called once per item, in the list's order).
type column[T any] struct {
	name, header string
	value        func(T) any
}

// printRows prints one line per item through the --format template, or
// through def, the list's default table, when --format is empty or
// "table". A template's dot is the item's row: a map from column names to
// values. A table gets a header row (the template run on the headers)
// and docker's column alignment. Nothing is printed unless every line
// could be.
func printRows[T any](out io.Writer, format, def string, cols []column[T], items []T) error {
	if format == "" || format == "table" {
		format = def
	}
	t, err := parseTemplate(format)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	fail := func(err error) error {
		names := make([]string, len(cols))
		for i, c := range cols {
			names[i] = c.name
		}
		return fmt.Errorf("%v (the fields are %s)", err, strings.Join(names, ", "))
	}
	if t.table {
		header := map[string]any{}
		for _, c := range cols {
			header[c.name] = c.header
		}
		if err := t.execute(&buf, header); err != nil {
			return fail(err)
		}
	}
	for _, it := range items {
		row := make(map[string]any, len(cols))
		for _, c := range cols {
			row[c.name] = c.value(it)
		}
		if err := t.execute(&buf, row); err != nil {
			return fail(err)
		}
	}
	if !t.table {
		_, err := buf.WriteTo(out)
		return err
	}
	tw := tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
	if _, err := buf.WriteTo(tw); err != nil {
		return err
	}
	return tw.Flush()
}

// printIDs is what -q prints.
func printIDs[T any](out io.Writer, items []T, id func(T) string) error {
	for _, it := range items {
		if _, err := fmt.Fprintln(out, id(it)); err != nil {
			return err
		}
	}
	return nil
}

// writeJSON prints messages as one JSON array.
func writeJSON[T proto.Message](out io.Writer, msgs []T) error {
	arr := make([]json.RawMessage, 0, len(msgs))
	for _, msg := range msgs {
		b, err := protoJSON(msg, false)
		if err != nil {
			return err
		}
		arr = append(arr, b)
	}
	b, err := json.MarshalIndent(arr, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, string(b))
	return err
}

// formatLabels is docker's LABELS column: k=v pairs by key, comma-separated.
func formatLabels(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

// formatTime is docker's CreatedAt: 2024-05-01 14:03:07 +0200 CEST.
func formatTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05 -0700 MST") }

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// enumName turns NODE_STATE_READY into "ready".
func enumName(s, prefix string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(s, prefix)), "_", "-")
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// inspectFormatHelp says what --format takes on inspect.
const inspectFormatHelp = "json, or a Go template run on each object as the JSON shows it, " +
	"with docker-style field names and unset fields as zero values: '{{.Spec.Name}}', '{{json .Spec.Labels}}'"

// inspectTemplate is an inspect command's --format: nil for json, or
// the template to run on each object.
func inspectTemplate(format string) (*outputTemplate, error) {
	switch {
	case format == "" || format == "json":
		return nil, nil
	case strings.HasPrefix(format, "table") || !strings.Contains(format, "{{"):
		return nil, fmt.Errorf("--format %q: use json or a Go template such as '{{.ID}} {{.Spec.Name}}' (table is for ls and ps)", format)
	}
	return parseTemplate(format)
}

// newInspectCmd is `KIND inspect REF...`: each object read with get
// through the control API, all printed as one JSON list, or each through
// a --format template. The template's dot is the object's JSON decoded
// into maps, lists, strings, numbers and booleans (what `{{json .}}`
// prints back), with the field names written as docker's are:
// {{.Spec.Name}}, {{.ID}}, {{.Meta.Version}} (see templateValue).
func newInspectCmd[T proto.Message](g *globals, use, short string, get getter[T]) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := inspectTemplate(format)
			if err != nil {
				return err
			}
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			out, err := getAll(cmd.Context(), c, get, args)
			if err != nil {
				return err
			}
			if t == nil {
				return writeJSON(g.out, out)
			}
			var buf bytes.Buffer
			for _, o := range out {
				dot, err := templateValue(o)
				if err != nil {
					return err
				}
				if err := t.execute(&buf, dot); err != nil {
					return err
				}
			}
			_, err = buf.WriteTo(g.out)
			return err
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "json", inspectFormatHelp)
	return cmd
}

// getter fetches one object by ID, name or ID prefix.
type getter[T any] func(ctx context.Context, c shoalv1.ControlServiceClient, ref string) (T, error)

// getAll fetches the objects refs name, in order; the first error ends
// it.
func getAll[T any](ctx context.Context, c shoalv1.ControlServiceClient, get getter[T], refs []string) ([]T, error) {
	var out []T
	for _, ref := range refs {
		o, err := get(ctx, c, ref)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// withPretty gives inspect command cmd (newInspectCmd's) docker's
// --pretty: the objects named, fetched with get, written by pretty into
// one buffer, printed once all are. --format with --pretty is refused
// in the words conflict (docker's differ from command to command).
func withPretty[T any](g *globals, cmd *cobra.Command, conflict string, get getter[T],
	pretty func(ctx context.Context, c shoalv1.ControlServiceClient, w *strings.Builder, objs []T) error) {
	var on bool
	cmd.Flags().BoolVar(&on, "pretty", false, "Print the information in a human friendly format")
	asJSON := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if !on {
			return asJSON(cmd, args)
		}
		if cmd.Flags().Changed("format") {
			return errors.New(conflict)
		}
		c, done, err := g.control()
		if err != nil {
			return err
		}
		defer done()
		objs, err := getAll(cmd.Context(), c, get, args)
		if err != nil {
			return err
		}
		var b strings.Builder
		if err := pretty(cmd.Context(), c, &b, objs); err != nil {
			return err
		}
		_, err = io.WriteString(g.out, b.String())
		return err
	}
}

// jsonValue is m's JSON, unset fields included, as Go values; numbers
// are json.Number so that 64-bit integers print whole.
func jsonValue(m proto.Message) (any, error) {
	b, err := protoJSON(m, true)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err = dec.Decode(&v)
	return v, err
}
