package cli

import (
	"strings"
	"testing"
)

// Every command-line mistake fails with docker's message shape and exit
// status, prints nothing on standard output, and never reaches a daemon.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"rollback"}, 1, "shoal: unknown command: shoal rollback\n\nRun 'shoal --help' for more information"},
		{[]string{"service", "frobnicate", "web"}, 1, "shoal: unknown command: shoal service frobnicate\n\nUsage:  shoal service\n\nRun 'shoal service --help' for more information"},
		{[]string{"service", "logs"}, 1, "shoal: 'shoal service logs' requires 1 argument\n\nUsage:  shoal service logs [OPTIONS] SERVICE|TASK"},
		{[]string{"service", "rollback"}, 1, "shoal: 'shoal service rollback' requires 1 argument\n\nUsage:  shoal service rollback [OPTIONS] SERVICE\n\nRun 'shoal service rollback --help' for more information"},
		{[]string{"service", "rollback", "a", "b"}, 1, "shoal: 'shoal service rollback' requires 1 argument"},
		{[]string{"service", "rollback", "--bogus", "web"}, 125, "unknown flag: --bogus\n\nUsage:  shoal service rollback [OPTIONS] SERVICE"},
		{[]string{"node", "frobnicate"}, 1, "shoal: unknown command: shoal node frobnicate\n\nUsage:  shoal node\n\nRun 'shoal node --help' for more information"},
		{[]string{"image", "build", "."}, 1, "shoal: unknown command: shoal image build\n\nUsage:  shoal image\n\nRun 'shoal image --help' for more information"},
		{[]string{"swarm", "unlock", "SHOALKEY-1-x"}, 1, "shoal: 'shoal swarm unlock' accepts no arguments\n\nUsage:  shoal swarm unlock\n\nRun 'shoal swarm unlock --help' for more information"},
		{[]string{"swarm", "unlock-key", "--rotate=maybe"}, 125, `invalid argument "maybe" for "--rotate" flag`},
		{[]string{"network", "connect", "app", "c1"}, 1, "shoal: unknown command: shoal network connect\n\nUsage:  shoal network\n\nRun 'shoal network --help' for more information"},
		{[]string{"completion", "tcsh"}, 1, "shoal: unknown command: shoal completion tcsh"},
		{[]string{"--bogus"}, 125, "unknown flag: --bogus\n\nRun 'shoal --help' for more information"},
		{[]string{"service", "--bogus"}, 125, "unknown flag: --bogus\n\nUsage:  shoal service\n\nRun 'shoal service --help' for more information"},
		{[]string{"service", "ls", "--bogus"}, 125, "unknown flag: --bogus\n\nUsage:  shoal service ls [OPTIONS]\n\nRun 'shoal service ls --help' for more information"},
		{[]string{"node", "ls", "-z"}, 125, "unknown shorthand flag: 'z' in -z\n\nUsage:  shoal node ls [OPTIONS]\n\nRun 'shoal node ls --help' for more information"},
		{[]string{"network", "ls", "--format"}, 125, "flag needs an argument: --format\n\nUsage:  shoal network ls [OPTIONS]"},
		{[]string{"image", "ls", "-q=maybe"}, 125, `invalid argument "maybe" for "-q, --quiet" flag`},
		{[]string{"swarm", "init", "--task-history-limit", "x"}, 125, `invalid argument "x" for "--task-history-limit" flag`},
		{[]string{"service", "create"}, 1, "shoal: 'shoal service create' requires at least 1 argument\n\nUsage:  shoal service create [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'shoal service create --help' for more information"},
		{[]string{"service", "update"}, 1, "shoal: 'shoal service update' requires 1 argument\n\nUsage:  shoal service update [OPTIONS] SERVICE\n\nRun 'shoal service update --help' for more information"},
		{[]string{"service", "update", "a", "b"}, 1, "shoal: 'shoal service update' requires 1 argument"},
		{[]string{"node", "inspect"}, 1, "shoal: 'shoal node inspect' requires at least 1 argument\n\nUsage:  shoal node inspect [OPTIONS] self|NODE [NODE...]"},
		{[]string{"node", "ls", "extra"}, 1, "shoal: 'shoal node ls' accepts no arguments\n\nUsage:  shoal node ls [OPTIONS]\n\nRun 'shoal node ls --help' for more information"},
		{[]string{"network", "create"}, 1, "shoal: 'shoal network create' requires 1 argument"},
		{[]string{"swarm", "join"}, 1, "shoal: 'shoal swarm join' requires 1 argument"},
		{[]string{"image", "rm"}, 1, "shoal: 'shoal image rm' requires at least 1 argument"},
		{[]string{"ps", "extra"}, 1, "shoal: 'shoal ps' accepts no arguments"},
		{[]string{"version", "extra"}, 1, "shoal: 'shoal version' accepts no arguments\n\nUsage:  shoal version\n\nRun 'shoal version --help' for more information"},
	} {
		args := append([]string{"-H", "unix://" + noDaemon}, tc.args...)
		stdout, stderr, err := run(t, args...)
		if err == nil {
			t.Errorf("Run(%q) = nil; want a usage error", tc.args)
			continue
		}
		if got := ExitCode(err); got != tc.code {
			t.Errorf("Run(%q): exit status %d; want %d", tc.args, got, tc.code)
		}
		if msg := Message(err); !strings.HasPrefix(msg, tc.want) {
			t.Errorf("Run(%q) says\n%s\nwant it to begin\n%s", tc.args, msg, tc.want)
		}
		if strings.Contains(err.Error(), noDaemon) {
			t.Errorf("Run(%q) = %q; want the usage error before any connection", tc.args, err)
		}
		if stdout != "" || stderr != "" {
			t.Errorf("Run(%q) printed %q, %q; want nothing (the caller prints the message)", tc.args, stdout, stderr)
		}
	}
}

// A group called bare prints its help and succeeds, as docker does.
func TestBareGroupPrintsHelp(t *testing.T) {
	for _, group := range []string{"", "swarm", "node", "service", "network", "image"} {
		var args []string
		if group != "" {
			args = []string{group}
		}
		stdout, _, err := run(t, args...)
		if err != nil {
			t.Errorf("Run(%q) = %v; want its help", args, err)
			continue
		}
		if !strings.Contains(stdout, "Available Commands:") || !strings.Contains(stdout, "Usage:") {
			t.Errorf("Run(%q) printed %q; want the group's help", args, stdout)
		}
	}
}

// Errors that are not usage mistakes keep the "Error: " prefix.
func TestMessage(t *testing.T) {
	_, _, err := run(t, "-H", "unix://"+noDaemon, "service", "ls")
	if msg := Message(err); !strings.HasPrefix(msg, "Error: cannot reach the daemon") || ExitCode(err) != 1 {
		t.Errorf("Message = %q, exit %d; want Error: cannot reach the daemon..., exit 1", msg, ExitCode(err))
	}
}
