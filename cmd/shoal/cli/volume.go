package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// `shoal volume`, as docker's: a node's local volumes through its own
// socket; `volume ls --cluster` (or any ls against a tcp:// manager) asks
// the managers for every node's, as the nodes last reported them.

func newVolumeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "volume", Short: "Manage a node's volumes"}
	cmd.AddCommand(newVolumeCreateCmd(g), newVolumeLsCmd(g), newVolumeInspectCmd(g), newVolumeRmCmd(g), newVolumePruneCmd(g))
	return cmd
}

func newVolumeCreateCmd(g *globals) *cobra.Command {
	var driver string
	var labels, opts []string
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume on this node",
		Args:  rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &shoalv1.CreateVolumeRequest{Driver: driver}
			if len(args) == 1 {
				req.Name = args[0]
			}
			var err error
			if req.Labels, err = applyKV(nil, labels, nil, "--label"); err != nil {
				return err
			}
			if req.Options, err = applyKV(nil, opts, nil, "--opt"); err != nil {
				return err
			}
			rc, done, err := g.runtimeClient()
			if err != nil {
				return err
			}
			defer done()
			resp, err := rc.CreateVolume(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.out, resp.GetVolume().GetName())
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&driver, "driver", "d", "local", "Specify volume driver name")
	fs.StringArrayVar(&labels, "label", nil, "Set metadata for a volume")
	fs.StringArrayVarP(&opts, "opt", "o", nil, "Set driver specific options (type, device, o)")
	return cmd
}

// volumeRow is a line of volume ls.
type volumeRow = *shoalv1.Volume

var volumeColumns = []column[volumeRow]{
	{"Driver", "DRIVER", func(v volumeRow) any { return v.GetDriver() }},
	{"Name", "VOLUME NAME", func(v volumeRow) any { return v.GetName() }},
	{"Node", "NODE", func(v volumeRow) any { return v.GetNodeId() }},
	{"Mountpoint", "MOUNTPOINT", func(v volumeRow) any { return v.GetMountpoint() }},
	{"Labels", "LABELS", func(v volumeRow) any { return formatLabels(v.GetLabels()) }},
	{"Scope", "SCOPE", func(volumeRow) any { return "local" }},
	{"Links", "LINKS", func(v volumeRow) any { return len(v.GetContainers()) }},
}

// volumeFilter is docker's volume ls --filter: dangling=true|false,
// name=SUBSTRING, label=KEY[=VALUE], driver=NAME.
func volumeFilter(filters []string) (func(*shoalv1.Volume) bool, error) {
	type test func(*shoalv1.Volume) bool
	var tests []test
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("bad format of filter (expected name=value): %s", f)
		}
		switch k {
		case "dangling":
			var want bool
			switch v {
			case "true", "1":
				want = true
			case "false", "0":
			default:
				return nil, fmt.Errorf("invalid filter 'dangling=%s': use true or false", v)
			}
			tests = append(tests, func(vol *shoalv1.Volume) bool { return (len(vol.GetContainers()) == 0) == want })
		case "name":
			tests = append(tests, func(vol *shoalv1.Volume) bool { return strings.Contains(vol.GetName(), v) })
		case "driver":
			tests = append(tests, func(vol *shoalv1.Volume) bool { return vol.GetDriver() == v })
		case "label":
			lk, lv, hasV := strings.Cut(v, "=")
			tests = append(tests, func(vol *shoalv1.Volume) bool {
				got, ok := vol.GetLabels()[lk]
				return ok && (!hasV || got == lv)
			})
		default:
			return nil, fmt.Errorf("invalid filter '%s': use dangling, name, label or driver", k)
		}
	}
	return func(v *shoalv1.Volume) bool {
		for _, t := range tests {
			if !t(v) {
				return false
			}
		}
		return true
	}, nil
}

func newVolumeLsCmd(g *globals) *cobra.Command {
	f := &listFlags{}
	var filters []string
	var cluster bool
	var node string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes: this node's, or every node's with --cluster",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			keep, err := volumeFilter(filters)
			if err != nil {
				return err
			}
			all := cluster || node != "" || strings.HasPrefix(g.host, "tcp://")
			var vols []*shoalv1.Volume
			if all {
				c, done, err := g.control()
				if err != nil {
					return err
				}
				defer done()
				resp, err := c.ListNodeVolumes(cmd.Context(), &shoalv1.ListNodeVolumesRequest{NodeId: node})
				if err != nil {
					return err
				}
				vols = resp.GetVolumes()
			} else {
				rc, done, err := g.runtimeClient()
				if err != nil {
					return err
				}
				defer done()
				resp, err := rc.ListVolumes(cmd.Context(), &shoalv1.ListVolumesRequest{})
				if err != nil {
					return err
				}
				vols = resp.GetVolumes()
			}
			var rows []*shoalv1.Volume
			for _, v := range vols {
				if keep(v) {
					rows = append(rows, v)
				}
			}
			switch {
			case f.quiet:
				return printIDs(g.out, rows, (*shoalv1.Volume).GetName)
			case f.format == "json":
				return writeJSON(g.out, rows)
			}
			def := "table {{.Driver}}\t{{.Name}}"
			if all {
				def = "table {{.Node}}\t{{.Driver}}\t{{.Name}}"
			}
			return printRows(g.out, f.format, def, volumeColumns, rows)
		},
	}
	f.register(cmd.Flags(), "Only display volume names")
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "Provide filter values (e.g. \"dangling=true\", \"label=k=v\", \"name=db\")")
	cmd.Flags().BoolVar(&cluster, "cluster", false, "every node's volumes, from the managers (with a NODE column)")
	cmd.Flags().StringVar(&node, "node", "", "one node's volumes, from the managers (an ID, hostname or ID prefix)")
	return cmd
}

func newVolumeInspectCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] VOLUME [VOLUME...]",
		Short: "Display detailed information on one or more volumes",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := inspectTemplate(format)
			if err != nil {
				return err
			}
			rc, done, err := g.runtimeClient()
			if err != nil {
				return err
			}
			defer done()
			var vols []*shoalv1.Volume
			for _, name := range args {
				resp, err := rc.InspectVolume(cmd.Context(), &shoalv1.InspectVolumeRequest{Name: name})
				if err != nil {
					return err
				}
				vols = append(vols, resp.GetVolume())
			}
			if t == nil {
				return writeJSON(g.out, vols)
			}
			var buf bytes.Buffer
			for _, v := range vols {
				dot, err := templateValue(v)
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

func newVolumeRmCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more volumes; a volume in use is not removed",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rc, done, err := g.runtimeClient()
			if err != nil {
				return err
			}
			defer done()
			var errs []error
			for _, name := range args {
				if _, err := rc.RemoveVolume(cmd.Context(), &shoalv1.RemoveVolumeRequest{Name: name, Force: force}); err != nil {
					errs = append(errs, cleanError(err))
					continue
				}
				fmt.Fprintln(g.out, name)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not fail on volumes that do not exist (a volume in use is never removed)")
	return cmd
}

func newVolumePruneCmd(g *globals) *cobra.Command {
	var all, force bool
	var filters []string
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused local volumes",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var labels []string
			for _, f := range filters {
				k, v, ok := strings.Cut(f, "=")
				if !ok || k != "label" {
					return fmt.Errorf("invalid filter %q: volume prune takes label=KEY[=VALUE]", f)
				}
				labels = append(labels, v)
			}
			if !force {
				warn := "WARNING! This will remove anonymous local volumes not used by at least one container."
				if all {
					warn = "WARNING! This will remove all local volumes not used by at least one container."
				}
				fmt.Fprintf(g.out, "%s\nAre you sure you want to continue? [y/N] ", warn)
				answer, _ := bufio.NewReader(g.stdin()).ReadString('\n')
				if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
					return nil
				}
			}
			rc, done, err := g.runtimeClient()
			if err != nil {
				return err
			}
			defer done()
			resp, err := rc.PruneVolumes(cmd.Context(), &shoalv1.PruneVolumesRequest{All: all, Labels: labels})
			if err != nil {
				return err
			}
			printPruned(g, resp)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused volumes, not just anonymous ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, "Provide filter values (e.g. \"label=<label>\")")
	return cmd
}

func printPruned(g *globals, resp *shoalv1.PruneVolumesResponse) {
	if len(resp.GetRemoved()) > 0 {
		fmt.Fprintln(g.out, "Deleted Volumes:")
		for _, n := range resp.GetRemoved() {
			fmt.Fprintln(g.out, n)
		}
		fmt.Fprintln(g.out)
	}
	fmt.Fprintf(g.out, "Total reclaimed space: %s\n", humanSize(int64(resp.GetSpaceReclaimed())))
}
