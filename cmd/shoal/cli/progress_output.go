package cli

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// progressOutput shows progress frames, and a closing note.
type progressOutput interface {
	show(f progressFrame)
	note(text string)
}

// newProgressOutput redraws in place on a terminal and writes plain lines
// anywhere else; quiet shows nothing (docker's -q).
func newProgressOutput(w io.Writer, quiet bool) progressOutput {
	switch {
	case quiet:
		return quietProgress{}
	case isTerminal(w):
		return &ttyProgress{w: w}
	}
	return &plainProgress{w: w, last: map[string]string{}}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

type quietProgress struct{}

func (quietProgress) show(progressFrame) {}
func (quietProgress) note(string)        {}

// plainProgress writes "ID: text" whenever a line's text changes, and
// never a bar or a cursor movement: pipes and logs get one line per
// change of state instead of a redraw every poll.
type plainProgress struct {
	w    io.Writer
	last map[string]string
}

func (p *plainProgress) show(f progressFrame) {
	for _, l := range f.lines {
		if l.text == "" || p.last[l.id] == l.text {
			continue
		}
		p.last[l.id] = l.text
		fmt.Fprintf(p.w, "%s: %s\n", l.id, l.text)
	}
}

func (p *plainProgress) note(text string) { fmt.Fprintln(p.w, text) }

// ttyProgress redraws its block of lines in place, as docker's terminal
// display does: up to the block's first line, then each line cleared and
// written again.
type ttyProgress struct {
	w     io.Writer
	drawn []string // the block on screen, top to bottom
}

// longestState pads states so that the bars line up ("preparing").
const longestState = len("preparing")

// maxErrWidth keeps an error on one line of a narrow terminal, which the
// redraw relies on (docker's truncError).
const maxErrWidth = 75

// barWidth is the number of steps of a bar on screen.
const barWidth = 50

func ttyLine(l progressLine) string {
	switch {
	case l.step > 0:
		n := barWidth * l.step / progressSteps
		return fmt.Sprintf("%s: %-*s [%s>%s]", l.id, longestState, l.text, strings.Repeat("=", n), strings.Repeat(" ", barWidth-n))
	case l.text == "":
		return l.id + ":"
	}
	return l.id + ": " + truncate(l.text, maxErrWidth)
}

func (p *ttyProgress) show(f progressFrame) {
	lines := make([]string, 0, max(len(f.lines), len(p.drawn)))
	for _, l := range f.lines {
		lines = append(lines, ttyLine(l))
	}
	for len(lines) < len(p.drawn) {
		lines = append(lines, "") // a line that went away is cleared
	}
	if slices.Equal(lines, p.drawn) {
		return
	}
	var b strings.Builder
	if n := len(p.drawn); n > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", n)
	}
	for _, l := range lines {
		b.WriteString("\r\x1b[2K")
		b.WriteString(l)
		b.WriteString("\n")
	}
	io.WriteString(p.w, b.String())
	p.drawn = lines
}

func (p *ttyProgress) note(text string) { fmt.Fprintln(p.w, text) }
