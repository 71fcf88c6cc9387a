package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Usage mistakes (an unknown command, a wrong number of arguments, a bad
// flag) are reported the way the docker CLI reports them: what was wrong,
// the command's usage line and where to read more, with exit status 1 (125
// for a flag), so a script never mistakes a typo for success.

// usageError is a mistake in the command line itself.
type usageError struct {
	msg  string
	code int
}

func (e usageError) Error() string { return e.msg }

// flagErrorCode is docker's exit status for a flag it cannot parse.
const flagErrorCode = 125

// Message is what to print on standard error for err: the usage text for
// a command-line mistake, "Error: ..." for anything else.
func Message(err error) string {
	var u usageError
	if errors.As(err, &u) {
		return u.msg
	}
	return "Error: " + err.Error()
}

// usageLine is docker's "Usage:  shoal service ls [OPTIONS]": the Use
// line, with [OPTIONS] when the command has flags of its own.
func usageLine(cmd *cobra.Command) string {
	if cmd.HasSubCommands() {
		return cmd.CommandPath()
	}
	l := strings.TrimSuffix(cmd.UseLine(), " [flags]")
	own := false
	cmd.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) { own = own || (f.Name != "help" && !f.Hidden) })
	if own && !strings.Contains(cmd.Use, "[OPTIONS]") && !strings.Contains(cmd.Use, "[-") {
		l = cmd.CommandPath() + " [OPTIONS]" + strings.TrimPrefix(l, cmd.CommandPath())
	}
	return l
}

// badUsage says what was wrong with cmd's command line, then its usage
// and where its help is.
func badUsage(cmd *cobra.Command, code int, what string) error {
	msg := what + "\n\n"
	if cmd.HasParent() {
		msg += "Usage:  " + usageLine(cmd) + "\n\n"
	}
	msg += fmt.Sprintf("Run '%s --help' for more information", cmd.CommandPath())
	return usageError{msg: msg, code: code}
}

func argCount(n int) string {
	if n == 1 {
		return "1 argument"
	}
	return fmt.Sprintf("%d arguments", n)
}

// noArgs is cobra.NoArgs with docker's wording.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return badUsage(cmd, 1, fmt.Sprintf("%s: '%s' accepts no arguments", cmd.Root().Name(), cmd.CommandPath()))
	}
	return nil
}

// exactArgs is cobra.ExactArgs with docker's wording.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return badUsage(cmd, 1, fmt.Sprintf("%s: '%s' requires %s", cmd.Root().Name(), cmd.CommandPath(), argCount(n)))
		}
		return nil
	}
}

// minArgs is cobra.MinimumNArgs with docker's wording.
func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return badUsage(cmd, 1, fmt.Sprintf("%s: '%s' requires at least %s", cmd.Root().Name(), cmd.CommandPath(), argCount(n)))
		}
		return nil
	}
}

// unknownCommand is a command group's argument check: any argument is a
// subcommand the group does not have.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return badUsage(cmd, 1, fmt.Sprintf("%s: unknown command: %s %s", cmd.Root().Name(), cmd.CommandPath(), args[0]))
	}
	return nil
}

// strictUsage makes root and every group under it refuse unknown
// subcommands (cobra would print the group's help and exit 0), print
// their help when called bare, and report bad flags in docker's shape.
func strictUsage(root *cobra.Command) {
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return badUsage(cmd, flagErrorCode, err.Error())
	})
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
			c.Args = unknownCommand
			c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
