package filetarget

import (
	"errors"
	"testing"
)

func TestPath(t *testing.T) {
	for _, tc := range []struct {
		name        string
		config      bool
		clean, full string
		err         error
	}{
		{"db_password", false, "db_password", "/run/secrets/db_password", nil},
		{"sub/./key", false, "sub/key", "/run/secrets/sub/key", nil},
		{"/etc/app/key", false, "/etc/app/key", "/etc/app/key", nil},
		{"app.conf", true, "/app.conf", "/app.conf", nil},
		{"etc//nginx.conf", true, "/etc/nginx.conf", "/etc/nginx.conf", nil},
		{"/etc/nginx.conf", true, "/etc/nginx.conf", "/etc/nginx.conf", nil},
		{"", false, "", "", ErrBlank},
		{"  ", true, "", "", ErrBlank},
		{"a\x00b", false, "", "", ErrNUL},
		{"../etc/passwd", false, "", "", ErrParent},
		{"a/../../b", true, "", "", ErrParent},
		{".", false, "", "", ErrDirectory},
		{"/", true, "", "", ErrDirectory},
		{"/run/secrets", false, "", "", ErrDirectory},
		{"/run/secrets/", true, "", "", ErrDirectory},
	} {
		clean, full, err := Path(tc.name, tc.config)
		if clean != tc.clean || full != tc.full || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("Path(%q, config=%v) = %q, %q, %v; want %q, %q, %v", tc.name, tc.config, clean, full, err, tc.clean, tc.full, tc.err)
		}
	}
}

func TestOwnerAndMode(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want uint32
		err  error
	}{{"", 0, nil}, {"0", 0, nil}, {"1000", 1000, nil}, {"4294967295", 4294967295, nil}, {"4294967296", 0, ErrNotNumeric}, {"app", 0, ErrNotNumeric}, {"-1", 0, ErrNotNumeric}} {
		if got, err := Owner(tc.v); got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("Owner(%q) = %d, %v; want %d, %v", tc.v, got, err, tc.want, tc.err)
		}
	}
	for _, tc := range []struct {
		m, want uint32
		err     error
	}{{0, 0o444, nil}, {0o400, 0o400, nil}, {0o777, 0o777, nil}, {0o1777, 0, ErrModeBits}, {0o4755, 0, ErrModeBits}} {
		if got, err := Mode(tc.m); got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("Mode(%#o) = %#o, %v; want %#o, %v", tc.m, got, err, tc.want, tc.err)
		}
	}
}
