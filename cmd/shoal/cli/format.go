package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// listFlags are the output flags of ls, ps and inspect commands.
type listFlags struct {
	format string
	quiet  bool
}

func (l *listFlags) check() error {
	switch l.format {
	case "", "table", "json":
		return nil
	}
	return fmt.Errorf("--format %q: use table or json", l.format)
}

// table writes aligned columns like docker's.
type table struct{ w *tabwriter.Writer }

func newTable(out io.Writer, header ...string) *table {
	t := &table{w: tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cols ...string) { fmt.Fprintln(t.w, strings.Join(cols, "\t")) }
func (t *table) flush()             { t.w.Flush() }

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

// newInspectCmd is `KIND inspect REF...`: each object read with get
// through the control API, all printed as one JSON list.
func newInspectCmd[T proto.Message](g *globals, use, short string, get func(ctx context.Context, c shoalv1.ControlServiceClient, ref string) (T, error)) *cobra.Command {
	f := &listFlags{}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			var out []T
			for _, ref := range args {
				o, err := get(cmd.Context(), c, ref)
				if err != nil {
					return err
				}
				out = append(out, o)
			}
			return writeJSON(g.out, out)
		},
	}
	cmd.Flags().StringVar(&f.format, "format", "json", "json")
	return cmd
}
