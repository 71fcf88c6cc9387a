package container

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCapabilities(t *testing.T) {
	for _, tc := range []struct {
		name       string
		add, drop  []string
		has, lacks []string
		count      int
		wantErr    string
	}{
		{name: "defaults", has: []string{"CAP_CHOWN", "CAP_KILL"}, lacks: []string{"CAP_NET_ADMIN"}, count: 14},
		{name: "add short lower", add: []string{"net_admin"}, has: []string{"CAP_NET_ADMIN", "CAP_CHOWN"}, count: 15},
		{name: "drop", drop: []string{"CAP_CHOWN", "kill"}, lacks: []string{"CAP_CHOWN", "CAP_KILL"}, count: 12},
		{name: "add wins over drop", add: []string{"CHOWN"}, drop: []string{"chown"}, has: []string{"CAP_CHOWN"}, count: 14},
		{name: "drop all keeps adds", add: []string{"NET_BIND_SERVICE"}, drop: []string{"ALL"}, has: []string{"CAP_NET_BIND_SERVICE"}, count: 1},
		{name: "add all minus drops", add: []string{"all"}, drop: []string{"SYS_ADMIN"}, has: []string{"CAP_NET_ADMIN"}, lacks: []string{"CAP_SYS_ADMIN"}, count: len(capNamesForTest()) - 1},
		{name: "unknown", add: []string{"CAP_FOO"}, wantErr: `unknown capability: "CAP_FOO"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Capabilities(tc.add, tc.drop)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			set := map[string]bool{}
			for _, c := range got {
				set[c] = true
			}
			for _, c := range tc.has {
				if !set[c] {
					t.Errorf("lacks %s: %v", c, got)
				}
			}
			for _, c := range tc.lacks {
				if set[c] {
					t.Errorf("has %s: %v", c, got)
				}
			}
			if len(got) != tc.count {
				t.Errorf("%d capabilities, want %d: %v", len(got), tc.count, got)
			}
		})
	}
}

func capNamesForTest() []string {
	all, _ := Capabilities([]string{"ALL"}, nil)
	return all
}

func TestShimRlimits(t *testing.T) {
	got, err := shimRlimits([]Ulimit{{Name: "nofile", Soft: 100, Hard: 200}, {Name: "core", Soft: -1, Hard: -1}})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Resource != unix.RLIMIT_NOFILE || got[0].Soft != 100 || got[0].Hard != 200 || got[1].Soft != unix.RLIM_INFINITY {
		t.Fatalf("got %+v", got)
	}
	for _, bad := range [][]Ulimit{{{Name: "nofiles", Soft: 1, Hard: 1}}, {{Name: "nofile", Soft: 2, Hard: 1}}, {{Name: "nproc", Soft: 1, Hard: 1}, {Name: "nproc", Soft: 1, Hard: 1}}} {
		if _, err := shimRlimits(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestResolvConf(t *testing.T) {
	base := "nameserver 10.0.0.2\nsearch corp\noptions ndots:0\n"
	for _, tc := range []struct {
		dns  DNSConfig
		want string
	}{
		{DNSConfig{}, base},
		{DNSConfig{Nameservers: []string{"1.1.1.1", "9.9.9.9"}}, "search corp\noptions ndots:0\nnameserver 1.1.1.1\nnameserver 9.9.9.9\n"},
		{DNSConfig{Search: []string{"a.example", "b.example"}}, "nameserver 10.0.0.2\noptions ndots:0\nsearch a.example b.example\n"},
		{DNSConfig{Options: []string{"ndots:5", "timeout:1"}}, "nameserver 10.0.0.2\nsearch corp\noptions ndots:5 timeout:1\n"},
		{DNSConfig{Nameservers: []string{"1.1.1.1"}}, "search corp\noptions ndots:0\nnameserver 1.1.1.1\n"},
	} {
		if got := resolvConf(base, tc.dns); got != tc.want {
			t.Errorf("%+v:\n got %q\nwant %q", tc.dns, got, tc.want)
		}
	}
}

func TestCheckSpecRefuses(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{Sysctls: map[string]string{"vm.swappiness": "1"}}, "not namespaced"},
		{Spec{ExtraHosts: []string{"nothost"}}, "IP HOSTNAME"},
		{Spec{DNS: DNSConfig{Nameservers: []string{"dns.example"}}}, "not an IP"},
		{Spec{Mounts: []Mount{{Type: MountTmpfs, Target: "rel"}}}, "absolute"},
		{Spec{Mounts: []Mount{{Type: MountTmpfs, Target: "/a"}, {Type: MountTmpfs, Target: "/a/"}}}, "duplicate mount point"},
		{Spec{CapDrop: []string{"bogus"}}, "unknown capability"},
		{Spec{Ulimits: []Ulimit{{Name: "x"}}}, "unknown"},
	} {
		if err := checkSpec(tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.spec, err, tc.want)
		}
	}
}

// The container spec's fields, seen from inside real containers.
func TestContainerSpecInside(t *testing.T) {
	r, _ := newRuntime(t)
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "hello"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		spec Spec
		want []string
	}{
		{"cap add and drop", Spec{CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"CHOWN"}, Cmd: []string{"grep", "CapEff", "/proc/self/status"}},
			[]string{"CapEff:\t00000000a80435fa"}},
		{"sysctl", Spec{Sysctls: map[string]string{"kernel.shmmni": "1234", "net.ipv4.ip_unprivileged_port_start": "80"},
			Cmd: []string{"sh", "-c", "cat /proc/sys/kernel/shmmni /proc/sys/net/ipv4/ip_unprivileged_port_start"}}, []string{"1234\n80\n"}},
		{"ulimit", Spec{Ulimits: []Ulimit{{Name: "nofile", Soft: 321, Hard: 654}}, Cmd: []string{"sh", "-c", "ulimit -n; ulimit -Hn"}}, []string{"321\n654\n"}},
		{"groups", Spec{User: "app", Groups: []string{"nogroup", "4242"}, Cmd: []string{"id", "-G"}}, []string{"1000 2000 4242 65534"}},
		{"dns and hosts", Spec{DNS: DNSConfig{Nameservers: []string{"10.9.8.7"}, Search: []string{"svc.example"}, Options: []string{"ndots:2"}},
			ExtraHosts: []string{"10.1.2.3 db db.local"}, Cmd: []string{"sh", "-c", "cat /etc/resolv.conf /etc/hosts"}},
			[]string{"nameserver 10.9.8.7\n", "search svc.example\n", "options ndots:2\n", "10.1.2.3 db db.local\n"}},
		{"tty", Spec{Tty: true, Cmd: []string{"sh", "-c", "test -t 0 && test -t 1 && echo a terminal"}}, []string{"a terminal"}},
		{"no tty", Spec{Cmd: []string{"sh", "-c", "test -t 1 || echo not a terminal"}}, []string{"not a terminal"}},
		{"bind read-write", Spec{Mounts: []Mount{{Type: MountBind, Source: hostDir, Target: "/srv/data"}},
			Cmd: []string{"sh", "-c", "cat /srv/data/hello && echo written > /srv/data/out"}}, []string{"from the host"}},
		{"bind read-only", Spec{Mounts: []Mount{{Type: MountBind, Source: hostDir, Target: "/ro", ReadOnly: true}},
			Cmd: []string{"sh", "-c", "cat /ro/hello; touch /ro/x 2>&1"}}, []string{"from the host", "Read-only file system"}},
		{"bind propagation", Spec{Mounts: []Mount{{Type: MountBind, Source: hostDir, Target: "/shared", Propagation: "rshared"}},
			Cmd: []string{"grep", " /shared ", "/proc/self/mountinfo"}}, []string{"shared:"}},
		{"tmpfs size", Spec{Mounts: []Mount{{Type: MountTmpfs, Target: "/scratch", TmpfsSize: 1 << 20, TmpfsMode: 0o1770}},
			Cmd: []string{"sh", "-c", "ls -ld /scratch; dd if=/dev/zero of=/scratch/fill bs=4096 count=1024 2>&1"}},
			[]string{"drwxrwx--T", "No space left on device"}},
		{"empty entrypoint runs cmd", Spec{Entrypoint: []string{}, Cmd: []string{"echo", "cmd alone"}}, []string{"cmd alone"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, out := run(t, r, tc.spec)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(hostDir, "out")); err != nil || string(b) != "written\n" {
		t.Errorf("the read-write bind's write is not on the host: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(hostDir, "x")); err == nil {
		t.Error("a write through the read-only bind reached the host")
	}
}

// A symlink in the image cannot point a mount target at the host.
func TestMountTargetStaysInside(t *testing.T) {
	r, imgs := newRuntime(t)
	layer := imgs.img.LayerDirs[0]
	victim := t.TempDir()
	for name, target := range map[string]string{"escape-abs": oldRootForTest + victim, "escape-rel": "../../../../../.." + oldRootForTest + victim} {
		if err := os.Symlink(target, filepath.Join(layer, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"escape-abs", "escape-rel"} {
		ctxSpec := Spec{Image: "test:1", Mounts: []Mount{{Type: MountTmpfs, Target: "/" + name + "/sub"}}, Cmd: []string{"true"}}
		_, out, err := tryRun(t, r, ctxSpec)
		if err == nil {
			t.Errorf("%s: started; output %s", name, out)
		} else if !strings.Contains(err.Error(), "resolves outside the container") {
			t.Errorf("%s: error %v", name, err)
		}
		if entries, _ := os.ReadDir(victim); len(entries) > 0 {
			t.Fatalf("%s: the host directory was touched: %v", name, entries)
		}
	}
	// Inside the root, a symlink is followed as in the container.
	if err := os.Symlink("/tmp", filepath.Join(layer, "inroot")); err != nil {
		t.Fatal(err)
	}
	_, out := run(t, r, Spec{Mounts: []Mount{{Type: MountTmpfs, Target: "/inroot/t"}}, Cmd: []string{"sh", "-c", "grep -c ' /tmp/t ' /proc/self/mountinfo"}})
	if !reflect.DeepEqual(strings.TrimSpace(out), "1") {
		t.Errorf("the in-root symlink target: %q", out)
	}
}

const oldRootForTest = "/.shoal-oldroot"
