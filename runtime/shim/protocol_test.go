package shim

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		msg  Message
		wire string
	}{
		{PidMessage(4242), "pid 4242\n"},
		{Ready, "ready\n"},
		{Go, "go\n"},
		{Started, "started\n"},
		{ErrorMessage("exec /app: no such file or directory"), "error exec /app: no such file or directory\n"},
		// An error of several lines travels as one.
		{ErrorMessage("  set up the root filesystem:\nmount /proc: busy\r\nretry\n"), "error set up the root filesystem: mount /proc: busy retry\n"},
	} {
		var buf bytes.Buffer
		if err := WriteMessage(&buf, tc.msg); err != nil {
			t.Errorf("WriteMessage(%#v): %v", tc.msg, err)
			continue
		}
		if buf.String() != tc.wire {
			t.Errorf("WriteMessage(%#v) wrote %q; want %q", tc.msg, buf.String(), tc.wire)
		}
		got, err := ReadMessage(bufio.NewReader(&buf))
		if err != nil || got != tc.msg {
			t.Errorf("ReadMessage(%q) = %#v, %v; want %#v", tc.wire, got, err, tc.msg)
		}
	}
}

// TestReadMessage covers what the reader meets on a pipe: a stream of
// messages, a last line without its newline, a closed pipe, and lines that
// are no message.
func TestReadMessage(t *testing.T) {
	r := bufio.NewReader(strings.NewReader("pid 7\nready\nerror it broke"))
	for _, want := range []Message{PidMessage(7), Ready, ErrorMessage("it broke")} {
		if got, err := ReadMessage(r); err != nil || got != want {
			t.Fatalf("ReadMessage = %#v, %v; want %#v", got, err, want)
		}
	}
	if _, err := ReadMessage(r); !errors.Is(err, io.EOF) {
		t.Errorf("ReadMessage at the end = %v; want io.EOF", err)
	}

	for _, tc := range []struct {
		line string
		want string // in the error
	}{
		{"", `malformed start message "": want one of pid N, ready, go, started or error MESSAGE`},
		{"\n", `malformed start message "": want one of`},
		{"hello", `malformed start message "hello": want one of pid N, ready, go, started or error MESSAGE`},
		{"GO", `malformed start message "GO": want one of`},
		{"pid", `malformed start message "pid": the pid must be a number greater than 0`},
		{"pid x", `malformed start message "pid x": the pid must be a number greater than 0`},
		{"pid 12 13", `malformed start message "pid 12 13": the pid must be a number`},
		{"pid 0", `malformed start message "pid 0": the pid must be a number greater than 0`},
		{"pid -3", `malformed start message "pid -3": the pid must be a number greater than 0`},
		{"pid 99999999999999999999", `the pid must be a number greater than 0`},
		{"error", `malformed start message "error": the error's text is missing`},
		{"error   ", `malformed start message "error": the error's text is missing`},
		{"ready now", `malformed start message "ready now": ready takes nothing after it`},
		{"go go", `malformed start message "go go": go takes nothing after it`},
		{"started 1", `malformed start message "started 1": started takes nothing after it`},
	} {
		m, err := ParseMessage(tc.line)
		if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseMessage(%q) = %#v, %v; want an ErrMalformed saying %q", tc.line, m, err, tc.want)
		}
		if m != (Message{}) {
			t.Errorf("ParseMessage(%q) returned %#v with its error; want the zero Message", tc.line, m)
		}
	}
}

// TestWriteMessageRefuses checks that the writer sends nothing a reader
// would refuse.
func TestWriteMessageRefuses(t *testing.T) {
	for _, tc := range []struct {
		msg  Message
		want string
	}{
		{Message{}, "no message has kind(0)"},
		{Message{Kind: 99}, "no message has kind(99)"},
		{PidMessage(0), "a pid message needs a pid greater than 0, got 0"},
		{PidMessage(-1), "a pid message needs a pid greater than 0, got -1"},
		{ErrorMessage(""), "an error message needs the error's text"},
		{ErrorMessage(" \n "), "an error message needs the error's text"},
		{Message{Kind: KindError, Err: "two\nlines"}, `an error message is one trimmed line (make it with ErrorMessage), got "two\nlines"`},
		{Message{Kind: KindError, Err: " padded"}, "an error message is one trimmed line"},
	} {
		var buf bytes.Buffer
		err := WriteMessage(&buf, tc.msg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WriteMessage(%#v) = %v; want an error saying %q", tc.msg, err, tc.want)
		}
		if buf.Len() != 0 {
			t.Errorf("WriteMessage(%#v) wrote %q with its error; want nothing", tc.msg, buf.String())
		}
	}
}
