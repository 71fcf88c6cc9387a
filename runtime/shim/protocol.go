package shim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The start protocol. Three processes take part in a container's start,
// and they talk over pipes in messages of one line each:
//
//	daemon → shim (fd 3)          Go; end of file means abort
//	shim → daemon (fd 4)          Pid, Ready, then Started or an Error
//	shim → init (fd 3)            Go; end of file means abort
//	init → shim (the setup pipe)  Ready or an Error; after Go, an Error if
//	                              the exec fails (end of file: it ran)
//
// Any step may end early with an Error instead. After the start, every
// pipe is closed: the shim needs nothing more from the daemon, which may
// die and come back.

// Kind says what a Message is.
type Kind int

// The kinds of message.
const (
	// KindPid gives the container init's PID (in the host's PID namespace).
	KindPid Kind = iota + 1
	// KindReady says the init has prepared the container and starts no
	// more threads.
	KindReady
	// KindGo tells the receiver to start the workload.
	KindGo
	// KindStarted says the workload was exec'd.
	KindStarted
	// KindError says why the start failed.
	KindError
)

// words are the kinds on the wire.
var words = map[Kind]string{
	KindPid:     "pid",
	KindReady:   "ready",
	KindGo:      "go",
	KindStarted: "started",
	KindError:   "error",
}

func (k Kind) String() string {
	if w, ok := words[k]; ok {
		return w
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Message is one message of the start protocol.
type Message struct {
	Kind Kind
	Pid  int    // KindPid: greater than 0
	Err  string // KindError: what went wrong; not empty
}

// The messages that carry nothing but their kind.
var (
	Ready   = Message{Kind: KindReady}
	Go      = Message{Kind: KindGo}
	Started = Message{Kind: KindStarted}
)

// PidMessage says the init's PID is pid.
func PidMessage(pid int) Message { return Message{Kind: KindPid, Pid: pid} }

// ErrorMessage says the start failed because of msg. Its lines are joined
// into one: a message is one line on the wire.
func ErrorMessage(msg string) Message { return Message{Kind: KindError, Err: oneLine(msg)} }

// ErrMalformed is the category of a line that is no message of the start
// protocol.
var ErrMalformed = errors.New("malformed start message")

// String is the message as it is written, without the newline.
func (m Message) String() string {
	switch m.Kind {
	case KindPid:
		return words[KindPid] + " " + strconv.Itoa(m.Pid)
	case KindError:
		return words[KindError] + " " + m.Err
	}
	return m.Kind.String()
}

// check reports what makes m impossible to send, if anything.
func (m Message) check() error {
	switch m.Kind {
	case KindPid:
		if m.Pid <= 0 {
			return fmt.Errorf("a pid message needs a pid greater than 0, got %d", m.Pid)
		}
	case KindError:
		if m.Err == "" {
			return errors.New("an error message needs the error's text")
		}
		if strings.ContainsAny(m.Err, "\r\n") || m.Err != strings.TrimSpace(m.Err) {
			return fmt.Errorf("an error message is one trimmed line (make it with ErrorMessage), got %q", m.Err)
		}
	case KindReady, KindGo, KindStarted:
	default:
		return fmt.Errorf("no message has %v", m.Kind)
	}
	return nil
}

// WriteMessage writes m and its newline to w.
func WriteMessage(w io.Writer, m Message) error {
	if err := m.check(); err != nil {
		return err
	}
	_, err := io.WriteString(w, m.String()+"\n")
	return err
}

// ReadMessage reads the next message from r. It returns the read error as
// is (io.EOF when the writer closed its end first) when r holds no more
// text, and an error wrapping ErrMalformed when the line is no message. A
// last line without its newline still counts.
func ReadMessage(r *bufio.Reader) (Message, error) {
	line, err := r.ReadString('\n')
	if line == "" && err != nil {
		return Message{}, err
	}
	return ParseMessage(line)
}

// ParseMessage reads one message from its line (the newline is optional).
func ParseMessage(line string) (Message, error) {
	text := strings.TrimSpace(line)
	word, arg, hasArg := strings.Cut(text, " ")
	bad := func(format string, a ...any) (Message, error) {
		return Message{}, fmt.Errorf("%w %q: %s", ErrMalformed, text, fmt.Sprintf(format, a...))
	}
	var m Message
	for k, w := range words {
		if w == word {
			m.Kind = k
		}
	}
	switch m.Kind {
	case 0:
		return bad("want one of pid N, ready, go, started or error MESSAGE")
	case KindPid:
		pid, err := strconv.Atoi(arg)
		if err != nil || pid <= 0 {
			return bad("the pid must be a number greater than 0")
		}
		m.Pid = pid
	case KindError:
		m.Err = strings.TrimSpace(arg)
		if m.Err == "" {
			return bad("the error's text is missing")
		}
	default:
		if hasArg {
			return bad("%s takes nothing after it", word)
		}
	}
	return m, nil
}

// lineBreaks turns each line break into a space.
var lineBreaks = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ")

func oneLine(s string) string { return lineBreaks.Replace(strings.TrimSpace(s)) }
