package ctrspec

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCheckSysctl(t *testing.T) {
	for _, tc := range []struct {
		key  string
		host bool
		ok   bool
	}{
		{"kernel.shmmni", false, true}, {"kernel.msgmax", false, true}, {"fs.mqueue.msg_max", false, true},
		{"net.ipv4.ip_forward", false, true}, {"net.core.somaxconn", false, true},
		{"net.ipv4.ip_forward", true, false}, {"kernel.shmmni", true, true},
		{"vm.swappiness", false, false}, {"kernel.hostname", false, false},
		{"fs.mqueue.", false, false}, {"net.", false, false}, {"kernel.pid_max", false, false},
	} {
		err := CheckSysctl(tc.key, tc.host)
		if (err == nil) != tc.ok {
			t.Errorf("%s (host network %v): error %v, want ok=%v", tc.key, tc.host, err, tc.ok)
		}
	}
}

func TestCheckCap(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"NET_ADMIN", true}, {"net_admin", true}, {"CAP_SYS_TIME", true}, {"ALL", true}, {"all", true},
		{"bogus", false}, {"CAP_", false}, {"", false},
	} {
		if err := CheckCap(tc.name); (err == nil) != tc.ok {
			t.Errorf("%q: error %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	for _, c := range DefaultCaps {
		if _, ok := Caps[c]; !ok {
			t.Errorf("default capability %s has no number", c)
		}
	}
}

func TestParseUlimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Ulimit
		err  string
	}{
		{"nofile=1024:2048", Ulimit{"nofile", 1024, 2048}, ""},
		{"nofile=1024", Ulimit{"nofile", 1024, 1024}, ""},
		{"core=-1", Ulimit{"core", -1, -1}, ""},
		{"core=0:unlimited", Ulimit{"core", 0, -1}, ""},
		{"nofile=2048:1024", Ulimit{}, "above the hard limit"},
		{"nofile", Ulimit{}, "NAME=SOFT[:HARD]"},
		{"nofile=", Ulimit{}, "NAME=SOFT[:HARD]"},
		{"nofile=x", Ulimit{}, "not a number"},
		{"nofile=1:y", Ulimit{}, "not a number"},
		{"nofile=-2", Ulimit{}, "not a number"},
		{"files=1", Ulimit{}, "unknown; use one of"},
	} {
		got, err := ParseUlimit(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	if err := CheckUlimits([]Ulimit{{"nproc", 1, 1}, {"nproc", 2, 2}}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a name given twice: %v", err)
	}
	if r, soft, hard := Rlimit(Ulimit{"nofile", 10, -1}); r != unix.RLIMIT_NOFILE || soft != 10 || hard != unix.RLIM_INFINITY {
		t.Errorf("Rlimit = %d %d %d", r, soft, hard)
	}
}

func TestCheckHostLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{"10.0.0.1 db", true}, {"fe80::1 db db.local", true},
		{"db", false}, {"db 10.0.0.1", false}, {"10.0.0.1", false},
		{"10.0.0.1 db\n10.0.0.2 evil", false}, {"10.0.0.1 db # c", false},
	} {
		if err := CheckHostLine(tc.line); (err == nil) != tc.ok {
			t.Errorf("%q: error %v, want ok=%v", tc.line, err, tc.ok)
		}
	}
}

func TestParseSignal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want unix.Signal
	}{
		{"SIGTERM", unix.SIGTERM}, {"term", unix.SIGTERM}, {"USR1", unix.SIGUSR1}, {"9", unix.SIGKILL}, {"SIGQUIT", unix.SIGQUIT},
	} {
		if got, err := ParseSignal(tc.in); err != nil || got != tc.want {
			t.Errorf("%q = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "SIGBOGUS", "0", "65", "-1"} {
		if _, err := ParseSignal(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"512", 512, true}, {"64k", 64 << 10, true}, {"10m", 10 << 20, true}, {"1.5GiB", 3 << 29, true}, {"100MB", 100 << 20, true},
		{"", 0, false}, {"x", 0, false}, {"-1m", 0, false}, {"1e30t", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%q = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestLogOptions(t *testing.T) {
	for _, tc := range []struct {
		driver string
		opts   map[string]string
		size   int64
		files  int
		err    string
	}{
		{"", nil, 0, 0, ""},
		{"json-file", map[string]string{"max-size": "10m", "max-file": "5"}, 10 << 20, 5, ""},
		{"", map[string]string{"max-file": "1"}, 0, 1, ""},
		{"syslog", nil, 0, 0, `log driver "syslog" is not supported`},
		{"", map[string]string{"max-size": "1k"}, 0, 0, "below the smallest"},
		{"", map[string]string{"max-size": "big"}, 0, 0, "not a size"},
		{"", map[string]string{"max-file": "0"}, 0, 0, "from 1 to 1000"},
		{"", map[string]string{"compress": "true"}, 0, 0, "unknown log opt 'compress'"},
	} {
		size, files, err := LogOptions(tc.driver, tc.opts)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q %v: error %v, want %q", tc.driver, tc.opts, err, tc.err)
			}
			continue
		}
		if err != nil || size != tc.size || files != tc.files {
			t.Errorf("%q %v = %d, %d, %v; want %d, %d", tc.driver, tc.opts, size, files, err, tc.size, tc.files)
		}
	}
}
