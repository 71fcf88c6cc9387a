package tests

import (
	"os"
	"testing"

	"github.com/shoal-run/shoal/tests/harness"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.RemoveBinary()
	os.Exit(code)
}
