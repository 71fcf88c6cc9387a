package benchkit

import (
	"os/exec"
	"strings"
)

// BinaryVersion is what `BIN version` prints ("shoal 3b67eae"): the
// commit a `make build` binary was built from, which may differ from the
// working tree's HEAD.
func BinaryVersion(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
