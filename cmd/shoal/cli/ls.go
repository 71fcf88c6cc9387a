package cli

import (
	"context"
	"io"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// The ls commands of the control API's objects (node, service, network,
// secret, config) are one command over a list: docker's --format and
// --quiet, the objects from the manager, and printList.

// lsCmd describes one ls command.
type lsCmd[T proto.Message] struct {
	use, short, quietHelp string
	// list returns the objects in the order they are printed.
	list func(ctx context.Context, c shoalv1.ControlServiceClient) ([]T, error)
	id   func(T) string // what --quiet prints
	def  string         // the default table
	// cols are the rows' fields, asked for only when rows are printed
	// (some ask the manager more).
	cols func(ctx context.Context, c shoalv1.ControlServiceClient, items []T) ([]column[T], error)
}

func newLsCmd[T proto.Message](g *globals, l lsCmd[T]) *cobra.Command {
	f := &listFlags{}
	cmd := &cobra.Command{
		Use:     l.use,
		Aliases: []string{"list"},
		Short:   l.short,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			ctx := cmd.Context()
			items, err := l.list(ctx, c)
			if err != nil {
				return err
			}
			return printList(g.out, f, items, l.id, l.def, func() ([]column[T], error) { return l.cols(ctx, c, items) })
		},
	}
	f.register(cmd.Flags(), l.quietHelp)
	return cmd
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
