package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// `shoal secret` and `shoal config` (config.go), as docker's: create
// from a file or stdin, ls, inspect (JSON, a template or --pretty), rm.
// A secret's data never comes back from the manager, and this file
// never prints what it read.

// maxSecretSize is the managers' limit (controlapi.MaxSecretSize): the
// CLI reads at most twice that, as docker's does, so that a huge file is
// not read whole only to be refused.
const (
	maxSecretSize = 500 * 1024
	maxConfigSize = 1000 * 1024
)

// objectKind is what the shared secret and config commands need of one
// of the two types.
type objectKind[T proto.Message] struct {
	kind    string // "secret" or "config"
	maxSize int
	id      func(T) string
	name    func(T) string
	create  func(ctx context.Context, c shoalv1.ControlServiceClient, name string, labels map[string]string, data []byte) (T, error)
	get     getter[T]
	list    func(ctx context.Context, c shoalv1.ControlServiceClient, filters []*shoalv1.Filter) ([]T, error)
	remove  func(ctx context.Context, c shoalv1.ControlServiceClient, ref string) error
	// pretty writes docker's inspect --pretty of one object.
	pretty func(w io.Writer, o T) error
}

var secretKind = objectKind[*shoalv1.Secret]{
	kind:    "secret",
	maxSize: maxSecretSize,
	id:      (*shoalv1.Secret).GetId,
	name:    func(s *shoalv1.Secret) string { return s.GetSpec().GetName() },
	create: func(ctx context.Context, c shoalv1.ControlServiceClient, name string, labels map[string]string, data []byte) (*shoalv1.Secret, error) {
		resp, err := c.CreateSecret(ctx, &shoalv1.CreateSecretRequest{Spec: &shoalv1.SecretSpec{Name: name, Labels: labels, Data: data}})
		return resp.GetSecret(), err
	},
	get: func(ctx context.Context, c shoalv1.ControlServiceClient, ref string) (*shoalv1.Secret, error) {
		resp, err := c.GetSecret(ctx, &shoalv1.GetSecretRequest{SecretId: ref})
		return resp.GetSecret(), err
	},
	list: func(ctx context.Context, c shoalv1.ControlServiceClient, filters []*shoalv1.Filter) ([]*shoalv1.Secret, error) {
		resp, err := c.ListSecrets(ctx, &shoalv1.ListSecretsRequest{Filters: filters})
		return resp.GetSecrets(), err
	},
	remove: func(ctx context.Context, c shoalv1.ControlServiceClient, ref string) error {
		_, err := c.RemoveSecret(ctx, &shoalv1.RemoveSecretRequest{SecretId: ref})
		return err
	},
	pretty: prettySecret,
}

// resolver resolves a reference to an object of k through c: its ID
// and name, or why not.
func (k objectKind[T]) resolver(ctx context.Context, c shoalv1.ControlServiceClient) func(ref string) (objectRef, error) {
	return func(ref string) (objectRef, error) {
		o, err := k.get(ctx, c, ref)
		if err != nil {
			return objectRef{}, cleanError(err)
		}
		return objectRef{k.id(o), k.name(o)}, nil
	}
}

func newSecretCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "secret", Short: "Manage secrets"}
	cmd.AddCommand(newObjectCreateCmd(g, secretKind), newObjectLsCmd(g, secretKind, secretColumns),
		newObjectInspectCmd(g, secretKind), newObjectRmCmd(g, secretKind))
	return cmd
}

// secretColumns are secret ls's template fields: docker's.
var secretColumns = []column[*shoalv1.Secret]{
	{"ID", "ID", func(s *shoalv1.Secret) any { return s.GetId() }},
	{"Name", "NAME", func(s *shoalv1.Secret) any { return s.GetSpec().GetName() }},
	{"Driver", "DRIVER", func(*shoalv1.Secret) any { return "" }},
	{"CreatedAt", "CREATED", func(s *shoalv1.Secret) any { return ago(s.GetMeta().GetCreatedAt()) }},
	{"UpdatedAt", "UPDATED", func(s *shoalv1.Secret) any { return ago(s.GetMeta().GetUpdatedAt()) }},
	{"Labels", "LABELS", func(s *shoalv1.Secret) any { return formatLabels(s.GetSpec().GetLabels()) }},
}

// ago is docker's CREATED column: "2 hours ago".
func ago(ts *timestamppb.Timestamp) string {
	return humanDuration(time.Since(ts.AsTime())) + " ago"
}

// prettyTime is docker's inspect --pretty time: the UTC time as Go
// prints it.
func prettyTime(ts *timestamppb.Timestamp) string {
	return ts.AsTime().UTC().Format("2006-01-02 15:04:05.999999999 -0700 MST")
}

// prettyLabels writes docker's Labels block: " - k=v", or " - k" for an
// empty value, by key.
func prettyLabels(w io.Writer, labels map[string]string) {
	if len(labels) == 0 {
		return
	}
	fmt.Fprintln(w, "Labels:")
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if v := labels[k]; v != "" {
			fmt.Fprintf(w, " - %s=%s\n", k, v)
		} else {
			fmt.Fprintf(w, " - %s\n", k)
		}
	}
}

// prettySecret is docker's `secret inspect --pretty`; there is no data
// to show.
func prettySecret(w io.Writer, s *shoalv1.Secret) error {
	fmt.Fprintf(w, "ID:              %s\n", s.GetId())
	fmt.Fprintf(w, "Name:              %s\n", s.GetSpec().GetName())
	prettyLabels(w, s.GetSpec().GetLabels())
	fmt.Fprintln(w, "Driver:            ")
	fmt.Fprintf(w, "Created at:        %s\n", prettyTime(s.GetMeta().GetCreatedAt()))
	_, err := fmt.Fprintf(w, "Updated at:        %s\n", prettyTime(s.GetMeta().GetUpdatedAt()))
	return err
}

// rangeArgs is cobra.RangeArgs with docker's wording.
func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return badUsage(cmd, 1, fmt.Sprintf("%s: '%s' requires at least %d and at most %s", cmd.Root().Name(), cmd.CommandPath(), lo, argCount(hi)))
		}
		return nil
	}
}

// readObjectData reads a secret's or config's content from file, or from
// in for "-", as docker's does (its words), refusing empty content and
// content over max before anything is sent. Nothing read is ever put in
// an error.
func readObjectData(in io.Reader, file, kind string, max int) ([]byte, error) {
	var src io.Reader
	what := file
	switch file {
	case "":
		return nil, fmt.Errorf("%s file is required: give a file, or - to read standard input", kind)
	case "-":
		src, what = in, "STDIN"
	default:
		f, err := os.Open(file)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("error reading from %s: %v", file, err)
		}
		defer f.Close()
		src = f
	}
	// Read one byte more than the limit to tell "at the limit" from
	// "over it".
	data, err := io.ReadAll(io.LimitReader(src, int64(2*max)+1))
	if err != nil {
		return nil, fmt.Errorf("error reading from %s: %v", what, err)
	}
	switch {
	case len(data) == 0:
		return nil, fmt.Errorf("error reading from %s: data is empty", what)
	case len(data) > 2*max:
		return nil, fmt.Errorf("error reading from %s: more than %d bytes: %s data must be less than %d bytes", what, 2*max, kind, max)
	}
	return data, nil
}

func newObjectCreateCmd[T proto.Message](g *globals, k objectKind[T]) *cobra.Command {
	var labels []string
	kind := strings.ToUpper(k.kind)
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] " + kind + " [file|-]",
		Short: fmt.Sprintf("Create a %s from a file or STDIN as content", k.kind),
		Args:  rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			lbls, err := applyKV(nil, labels, nil, "--label")
			if err != nil {
				return err
			}
			file := ""
			if len(args) == 2 {
				file = args[1]
			}
			data, err := readObjectData(g.stdin(), file, k.kind, k.maxSize)
			if err != nil {
				return err
			}
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			o, err := k.create(cmd.Context(), c, args[0], lbls, data)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.out, k.id(o))
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&labels, "label", "l", nil, titleCase(k.kind)+" labels")
	return cmd
}

func newObjectLsCmd[T proto.Message](g *globals, k objectKind[T], cols []column[T]) *cobra.Command {
	def := "table {{.ID}}\t{{.Name}}\t{{.CreatedAt}}\t{{.UpdatedAt}}"
	if k.kind == "secret" {
		def = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.CreatedAt}}\t{{.UpdatedAt}}"
	}
	return newLsCmd(g, lsCmd[T]{
		use: "ls [OPTIONS]", short: "List " + k.kind + "s", quietHelp: "Only display IDs",
		filterHelp: "id, label, name",
		list: func(ctx context.Context, c shoalv1.ControlServiceClient, filters []*shoalv1.Filter) ([]T, error) {
			items, err := k.list(ctx, c, filters)
			slices.SortStableFunc(items, func(a, b T) int { return strings.Compare(k.name(a), k.name(b)) })
			return items, err
		},
		id: k.id, def: def, cols: fixedColumns(cols),
	})
}

func newObjectInspectCmd[T proto.Message](g *globals, k objectKind[T]) *cobra.Command {
	kind := strings.ToUpper(k.kind)
	cmd := newInspectCmd(g, "inspect [OPTIONS] "+kind+" ["+kind+"...]", fmt.Sprintf("Display detailed information on one or more %ss", k.kind), k.get)
	withPretty(g, cmd, "cannot supply extra formatting options to the pretty template", k.get,
		func(_ context.Context, _ shoalv1.ControlServiceClient, w *strings.Builder, objs []T) error {
			for i, o := range objs {
				if i > 0 {
					w.WriteString("\n")
				}
				if err := k.pretty(w, o); err != nil {
					return err
				}
			}
			return nil
		})
	return cmd
}

// newObjectRmCmd removes each object named, as docker's: every one is
// tried, the removed ones printed, and the errors of the others reported
// together at the end.
func newObjectRmCmd[T proto.Message](g *globals, k objectKind[T]) *cobra.Command {
	kind := strings.ToUpper(k.kind)
	return &cobra.Command{
		Use:     "rm " + kind + " [" + kind + "...]",
		Aliases: []string{"remove"},
		Short:   fmt.Sprintf("Remove one or more %ss", k.kind),
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			var errs []string
			for _, ref := range args {
				if err := k.remove(cmd.Context(), c, ref); err != nil {
					errs = append(errs, cleanError(err).Error())
					continue
				}
				fmt.Fprintln(g.out, ref)
			}
			if len(errs) > 0 {
				return errors.New(strings.Join(errs, "\n"))
			}
			return nil
		},
	}
}
