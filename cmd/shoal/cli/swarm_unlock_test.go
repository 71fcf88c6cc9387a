package cli

import (
	"bytes"
	"os"
	"testing"
)

// Off a terminal the key is the first line of stdin, without a prompt.
func TestReadKeyFromPipe(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"SHOALKEY-1-abc\n", "SHOALKEY-1-abc"},
		{"  SHOALKEY-1-abc  \r\nsecond line\n", "SHOALKEY-1-abc"},
		{"SHOALKEY-1-abc", "SHOALKEY-1-abc"},
		{"", ""},
	} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		go func() { _, _ = w.WriteString(tc.in); w.Close() }()
		var prompt bytes.Buffer
		got, err := readKey(r, &prompt, "Please enter unlock key: ")
		r.Close()
		if err != nil || got != tc.want {
			t.Errorf("readKey(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if prompt.Len() != 0 {
			t.Errorf("readKey(%q) prompted %q off a terminal", tc.in, prompt.String())
		}
	}
}

func TestPrintUnlockCommand(t *testing.T) {
	var out bytes.Buffer
	printUnlockCommand(&out, "")
	if out.Len() != 0 {
		t.Fatalf("no key printed %q; want nothing", out.String())
	}
	printUnlockCommand(&out, "SHOALKEY-1-k")
	want := "To unlock a swarm manager after it restarts, run the `shoal swarm unlock`\ncommand and provide the following key:\n\n    SHOALKEY-1-k\n\n" +
		"Please remember to store this key in a password manager, since without it you\nwill not be able to restart the manager.\n"
	if out.String() != want {
		t.Fatalf("printUnlockCommand =\n%s\nwant\n%s", out.String(), want)
	}
}
