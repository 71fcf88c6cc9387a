package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// containerStatus renders docker's STATUS column.
func containerStatus(c *shoalv1.Container, now time.Time) string {
	switch c.GetStatus() {
	case "running":
		s := "Up " + humanDuration(now.Sub(c.GetStartedAt().AsTime()))
		switch h := c.GetHealth(); h {
		case "starting":
			s += " (health: starting)"
		case "":
		default:
			s += " (" + h + ")"
		}
		return s
	case "exited":
		s := fmt.Sprintf("Exited (%d) %s ago", c.GetExitCode(), humanDuration(now.Sub(c.GetFinishedAt().AsTime())))
		if c.GetOomKilled() {
			s += " (OOMKilled)"
		}
		return s
	}
	return "Created"
}

// humanDuration is docker's rough "3 seconds", "2 minutes".
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return "Less than a second"
	case d < time.Minute:
		return plural(int(d.Seconds()), "second")
	case d < time.Hour:
		return plural(int(d.Minutes()), "minute")
	case d < 48*time.Hour:
		return plural(int(d.Hours()), "hour")
	}
	return plural(int(d.Hours()/24), "day")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

func newPsCmd(g *globals) *cobra.Command {
	f := &listFlags{}
	var all bool
	cmd := &cobra.Command{
		Use:   "ps [-a]",
		Short: "List this node's containers",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			rc, done, err := g.runtimeClient()
			if err != nil {
				return err
			}
			defer done()
			resp, err := rc.ListContainers(cmd.Context(), &shoalv1.ListContainersRequest{All: all})
			if err != nil {
				return err
			}
			cs := resp.GetContainers()
			switch {
			case f.quiet:
				return printIDs(g.out, cs, func(c *shoalv1.Container) string { return shortID(c.GetId()) })
			case f.format == "json":
				return writeJSON(g.out, cs)
			}
			return printRows(g.out, f.format, "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}", containerColumns(time.Now()), cs)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show all containers, not only running ones")
	f.register(cmd.Flags(), "print IDs only")
	return cmd
}

// containerColumns are ps's template fields, docker's.
func containerColumns(now time.Time) []column[*shoalv1.Container] {
	return []column[*shoalv1.Container]{
		{"ID", "CONTAINER ID", func(c *shoalv1.Container) any { return shortID(c.GetId()) }},
		{"Image", "IMAGE", func(c *shoalv1.Container) any { return c.GetImage() }},
		{"Command", "COMMAND", func(c *shoalv1.Container) any {
			return fmt.Sprintf("%q", truncate(strings.Join(c.GetCommand(), " "), 20))
		}},
		{"CreatedAt", "CREATED AT", func(c *shoalv1.Container) any { return formatTime(c.GetCreatedAt().AsTime()) }},
		{"RunningFor", "CREATED", func(c *shoalv1.Container) any { return humanDuration(now.Sub(c.GetCreatedAt().AsTime())) + " ago" }},
		{"State", "STATE", func(c *shoalv1.Container) any { return c.GetStatus() }},
		{"Status", "STATUS", func(c *shoalv1.Container) any { return containerStatus(c, now) }},
		{"Names", "NAMES", func(c *shoalv1.Container) any { return c.GetName() }},
	}
}

// eachContainer calls fn for each argument with a runtime client and
// prints the argument once fn succeeds, as docker does.
func (g *globals) eachContainer(args []string, fn func(rc shoalv1.RuntimeServiceClient, id string) error) error {
	rc, done, err := g.runtimeClient()
	if err != nil {
		return err
	}
	defer done()
	for _, id := range args {
		if err := fn(rc, id); err != nil {
			return err
		}
		fmt.Fprintln(g.out, id)
	}
	return nil
}

func newStopCmd(g *globals) *cobra.Command {
	var seconds int
	cmd := &cobra.Command{
		Use:   "stop [-t SECONDS] CONTAINER [CONTAINER...]",
		Short: "Stop containers: the stop signal, a grace period, then SIGKILL",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.eachContainer(args, func(rc shoalv1.RuntimeServiceClient, id string) error {
				req := &shoalv1.StopContainerRequest{Id: id}
				if cmd.Flags().Changed("time") {
					req.Timeout = durationpb.New(time.Duration(seconds) * time.Second)
				}
				_, err := rc.StopContainer(cmd.Context(), req)
				return err
			})
		},
	}
	cmd.Flags().IntVarP(&seconds, "time", "t", 10, "seconds to wait before killing")
	return cmd
}

func newKillCmd(g *globals) *cobra.Command {
	var sig string
	cmd := &cobra.Command{
		Use:   "kill [-s SIGNAL] CONTAINER [CONTAINER...]",
		Short: "Send a signal to containers (SIGKILL by default)",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.eachContainer(args, func(rc shoalv1.RuntimeServiceClient, id string) error {
				_, err := rc.KillContainer(cmd.Context(), &shoalv1.KillContainerRequest{Id: id, Signal: sig})
				return err
			})
		},
	}
	cmd.Flags().StringVarP(&sig, "signal", "s", "SIGKILL", "signal to send")
	return cmd
}

func newRmCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm [-f] CONTAINER [CONTAINER...]",
		Short: "Remove containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.eachContainer(args, func(rc shoalv1.RuntimeServiceClient, id string) error {
				_, err := rc.RemoveContainer(cmd.Context(), &shoalv1.RemoveContainerRequest{Id: id, Force: force})
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill and remove a running container")
	return cmd
}

func newLogsCmd(g *globals) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs [-f] CONTAINER",
		Short: "Print a container's output",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rc, done, err := g.runtimeClient()
			if err != nil {
				return err
			}
			defer done()
			return g.streamLogs(cmd.Context(), rc, args[0], follow)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output until the container exits")
	return cmd
}
