package testimage

import "strings"

// AnswerHostname is the hostname a whoami answer names (its "Hostname: "
// line): which replica answered. ok is false when the body has none.
func AnswerHostname(body []byte) (hostname string, ok bool) {
	for _, line := range strings.Split(string(body), "\n") {
		if h, found := strings.CutPrefix(line, "Hostname: "); found {
			return h, true
		}
	}
	return "", false
}
