package testimage

// TB is the part of testing.TB that Serve uses; programs that are not tests
// can pass their own.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Served is an image pushed to a loopback registry that lives as long as
// the test. Its Registry takes more pushes.
type Served struct {
	*Registry
	Ref   string // "127.0.0.1:PORT/whoami:TAG"
	Image Built
}

// Serve builds the whoami image for opts, starts a registry on a free
// loopback port, pushes the image as "whoami:<opts.Tag>" and closes the
// registry when the test ends. Any failure is fatal.
func Serve(t TB, opts Options) Served {
	t.Helper()
	b, err := Build("", opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	reg, err := StartRegistry()
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { reg.Close() })
	ref, err := reg.Push(b.Image, "whoami:"+b.Tag)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return Served{Registry: reg, Ref: ref, Image: b}
}
