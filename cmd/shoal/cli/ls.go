package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// The ls commands of the control API's objects (node, service, network,
// secret, config) are one command over a list: docker's --format and
// --quiet, the objects from the manager, and printList.

// lsCmd describes one ls command.
type lsCmd[T proto.Message] struct {
	use, short, quietHelp string
	// list returns the objects the filters keep, in the order they are
	// printed.
	list func(ctx context.Context, c shoalv1.ControlServiceClient, filters []*shoalv1.Filter) ([]T, error)
	// filterHelp says what --filter takes (docker's keys).
	filterHelp string
	id         func(T) string // what --quiet prints
	def        string         // the default table
	// cols are the rows' fields, asked for only when rows are printed
	// (some ask the manager more).
	cols func(ctx context.Context, c shoalv1.ControlServiceClient, items []T) ([]column[T], error)
}

func newLsCmd[T proto.Message](g *globals, l lsCmd[T]) *cobra.Command {
	f := &listFlags{}
	var ff filterFlag
	cmd := &cobra.Command{
		Use:     l.use,
		Aliases: []string{"list"},
		Short:   l.short,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			filters, err := ff.parse()
			if err != nil {
				return err
			}
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			ctx := cmd.Context()
			items, err := l.list(ctx, c, filters)
			if err != nil {
				return err
			}
			return printList(g.out, f, items, l.id, l.def, func() ([]column[T], error) { return l.cols(ctx, c, items) })
		},
	}
	f.register(cmd.Flags(), l.quietHelp)
	ff.register(cmd.Flags(), l.filterHelp)
	return cmd
}

// filterFlag is docker's -f/--filter KEY=VALUE, repeated; the managers
// apply them (the values of one key: any of them; several keys: all).
type filterFlag []string

func (f *filterFlag) register(fs *pflag.FlagSet, help string) {
	fs.StringArrayVarP((*[]string)(f), "filter", "f", nil, "Filter output based on conditions provided: "+help)
}

func (f filterFlag) parse() ([]*shoalv1.Filter, error) {
	var out []*shoalv1.Filter
	byKey := map[string]*shoalv1.Filter{}
	for _, kv := range f {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("bad format of filter (expected name=value): %s", kv)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		x, seen := byKey[k]
		if !seen {
			x = &shoalv1.Filter{Key: k}
			byKey[k] = x
			out = append(out, x)
		}
		x.Values = append(x.Values, v)
	}
	return out, nil
}

// printList prints what an ls or ps found, as docker's: the IDs with
// --quiet, the objects in full with --format json, else a row each, by
// the default table def or the --format template, with the fields cols
// gives (called only then).
func printList[T proto.Message](out io.Writer, f *listFlags, items []T, id func(T) string, def string, cols func() ([]column[T], error)) error {
	switch {
	case f.quiet:
		return printIDs(out, items, id)
	case f.format == "json":
		return writeJSON(out, items)
	}
	cs, err := cols()
	if err != nil {
		return err
	}
	return printRows(out, f.format, def, cs, items)
}

// fixedColumns are cols that ask nothing more.
func fixedColumns[T any](cols []column[T]) func(context.Context, shoalv1.ControlServiceClient, []T) ([]column[T], error) {
	return func(context.Context, shoalv1.ControlServiceClient, []T) ([]column[T], error) { return cols, nil }
}
