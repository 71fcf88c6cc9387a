package testimage

import (
	"fmt"
	"io"
	"net/http"
	"strings"
)

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

// GetHostname asks url with c and returns which replica answered: the
// answer's Hostname line.
func GetHostname(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	if h, ok := AnswerHostname(body); ok {
		return h, nil
	}
	return "", fmt.Errorf("no Hostname in %q", body)
}
