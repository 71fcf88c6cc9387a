package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// printUnlockCommand is docker's note on the unlock key, printed where a
// key is made or asked for; nothing when there is no key.
func printUnlockCommand(out io.Writer, key string) {
	if key == "" {
		return
	}
	fmt.Fprintf(out, "To unlock a swarm manager after it restarts, run the `shoal swarm unlock`\ncommand and provide the following key:\n\n    %s\n\n"+
		"Please remember to store this key in a password manager, since without it you\nwill not be able to restart the manager.\n", key)
}

func newUnlockKeyCmd(g *globals) *cobra.Command {
	f := &quietRotateFlags{}
	cmd := &cobra.Command{
		Use:   "unlock-key [-q] [--rotate]",
		Short: "Manage the unlock key",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			ctx := cmd.Context()
			if f.rotate {
				cur, err := c.GetCluster(ctx, &shoalv1.GetClusterRequest{})
				if err != nil {
					return err
				}
				if !cur.GetCluster().GetSpec().GetEncryption().GetAutoLockManagers() {
					return errors.New("cannot rotate because autolock is not turned on (shoal swarm update --autolock=true turns it on)")
				}
				if _, err := f.rotateCluster(ctx, c, g.out, cur.GetCluster(), &shoalv1.UpdateClusterRequest{RotateUnlockKey: true}, "manager unlock key"); err != nil {
					return err
				}
			}
			resp, err := c.GetUnlockKey(ctx, &shoalv1.GetUnlockKeyRequest{})
			if err != nil {
				return fmt.Errorf("could not fetch unlock key: %w", cleanError(err))
			}
			key := resp.GetUnlockKey()
			if key == "" {
				return errors.New("no unlock key is set (autolock is off; shoal swarm update --autolock=true turns it on)")
			}
			if f.quiet {
				fmt.Fprintln(g.out, key)
				return nil
			}
			printUnlockCommand(g.out, key)
			return nil
		},
	}
	f.register(cmd.Flags(), "only display the key", "rotate the unlock key; every manager re-wraps its keys with the new one")
	return cmd
}

func newSwarmUnlockCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unlock",
		Short: "Unlock a manager restarted under autolock (the key is read from stdin)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, done, err := g.swarm()
			if err != nil {
				return err
			}
			defer done()
			ctx := cmd.Context()
			info, err := c.Info(ctx, &shoalv1.InfoRequest{})
			if err != nil {
				return err
			}
			switch info.GetState() {
			case "inactive":
				return errors.New("this node is not part of a swarm")
			case "locked":
			default:
				return errors.New("swarm is not locked")
			}
			key, err := readKey(os.Stdin, g.errOut, "Please enter unlock key: ")
			if err != nil {
				return fmt.Errorf("read the unlock key: %w", err)
			}
			_, err = c.Unlock(ctx, &shoalv1.UnlockRequest{UnlockKey: key})
			return err
		},
	}
}

// readKey reads a key from in: without echo after a prompt when in is a
// terminal, else its first line.
func readKey(in *os.File, prompt io.Writer, msg string) (string, error) {
	fd := int(in.Fd())
	if t, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
		fmt.Fprint(prompt, msg)
		noEcho := *t
		noEcho.Lflag &^= unix.ECHO
		noEcho.Lflag |= unix.ICANON | unix.ISIG
		if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
			return "", err
		}
		defer func() {
			_ = unix.IoctlSetTermios(fd, unix.TCSETS, t)
			fmt.Fprintln(prompt)
		}()
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return strings.TrimSpace(line), err
}
