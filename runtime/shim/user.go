package shim

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"github.com/shoal-run/shoal/internal/ctrspec"

	"golang.org/x/sys/unix"
)

// identity is who the workload runs as.
type identity struct {
	uid, gid uint32
	groups   []uint32
	home     string
}

type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

func parsePasswd(r io.Reader) []passwdEntry {
	var out []passwdEntry
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 7 || strings.HasPrefix(f[0], "#") {
			continue
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, passwdEntry{name: f[0], uid: uint32(uid), gid: uint32(gid), home: f[5]})
	}
	return out
}

func parseGroup(r io.Reader) []groupEntry {
	var out []groupEntry
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 || strings.HasPrefix(f[0], "#") {
			continue
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		var members []string
		if f[3] != "" {
			members = strings.Split(f[3], ",")
		}
		out = append(out, groupEntry{name: f[0], gid: uint32(gid), members: members})
	}
	return out
}

func readLines(path string, parse func(io.Reader)) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	parse(f)
}

// resolveUser reads the container's /etc/passwd and /etc/group (after
// pivot_root, so they are the image's) and resolves USER[:GROUP] as
// Docker does: names or numbers, the user's primary group unless a group
// is given, supplementary groups from /etc/group membership.
func resolveUser(spec string) (identity, error) {
	var users []passwdEntry
	var groups []groupEntry
	readLines("/etc/passwd", func(r io.Reader) { users = parsePasswd(r) })
	readLines("/etc/group", func(r io.Reader) { groups = parseGroup(r) })
	return lookupUser(spec, users, groups)
}

func lookupUser(spec string, users []passwdEntry, groups []groupEntry) (identity, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" {
		userPart = "0"
	}
	id := identity{home: "/"}
	var name string
	if n, err := strconv.ParseUint(userPart, 10, 32); err == nil {
		id.uid = uint32(n)
		for _, u := range users {
			if u.uid == id.uid {
				id.gid, id.home, name = u.gid, u.home, u.name
				break
			}
		}
		// A numeric user absent from /etc/passwd gets group 0, as in Docker.
	} else {
		found := false
		for _, u := range users {
			if u.name == userPart {
				id.uid, id.gid, id.home, name, found = u.uid, u.gid, u.home, u.name, true
				break
			}
		}
		if !found {
			return id, fmt.Errorf("unable to find user %s: no matching entries in the image's /etc/passwd", userPart)
		}
	}
	if hasGroup && groupPart != "" {
		if n, err := strconv.ParseUint(groupPart, 10, 32); err == nil {
			id.gid = uint32(n)
		} else {
			found := false
			for _, g := range groups {
				if g.name == groupPart {
					id.gid, found = g.gid, true
					break
				}
			}
			if !found {
				return id, fmt.Errorf("unable to find group %s: no matching entries in the image's /etc/group", groupPart)
			}
		}
	}
	// Like runc: the user's own group from /etc/passwd, then every group
	// that lists the user as a member.
	seen := map[uint32]bool{}
	if name != "" {
		for _, u := range users {
			if u.name == name {
				id.groups = append(id.groups, u.gid)
				seen[u.gid] = true
				break
			}
		}
		for _, g := range groups {
			for _, m := range g.members {
				if m == name && !seen[g.gid] {
					id.groups = append(id.groups, g.gid)
					seen[g.gid] = true
				}
			}
		}
	}
	if id.home == "" {
		id.home = "/"
	}
	return id, nil
}

// withGroups adds supplementary groups, names looked up in the image's
// /etc/group or numbers, as docker's --group-add.
func withGroups(id identity, extra []string) (identity, error) {
	if len(extra) == 0 {
		return id, nil
	}
	var groups []groupEntry
	readLines("/etc/group", func(r io.Reader) { groups = parseGroup(r) })
	return addGroups(id, extra, groups)
}

func addGroups(id identity, extra []string, groups []groupEntry) (identity, error) {
	seen := map[uint32]bool{}
	for _, g := range id.groups {
		seen[g] = true
	}
	for _, e := range extra {
		gid, err := strconv.ParseUint(e, 10, 32)
		if err != nil {
			found := false
			for _, g := range groups {
				if g.name == e {
					gid, found = uint64(g.gid), true
					break
				}
			}
			if !found {
				return id, fmt.Errorf("unable to find group %s: no matching entries in the image's /etc/group", e)
			}
		}
		if !seen[uint32(gid)] {
			id.groups = append(id.groups, uint32(gid))
			seen[uint32(gid)] = true
		}
	}
	return id, nil
}

// AllCaps are the names of every capability this build knows.
func AllCaps() []string {
	out := make([]string, 0, len(ctrspec.Caps))
	for n := range ctrspec.Caps {
		out = append(out, n)
	}
	return out
}

// DefaultCaps is Docker's default capability set.
var DefaultCaps = ctrspec.DefaultCaps

// CapMask turns capability names into a bit mask.
func CapMask(names []string) (uint64, error) {
	var m uint64
	for _, n := range names {
		c, ok := ctrspec.Caps[strings.ToUpper(n)]
		if !ok {
			return 0, fmt.Errorf("unknown capability %q", n)
		}
		m |= 1 << uint(c)
	}
	return m, nil
}

// dropPrivileges limits the bounding set to caps, switches to the
// workload's groups and user, leaves root with exactly caps and anyone
// else with none, and sets no_new_privs. It acts on this thread, the one
// that execs.
func dropPrivileges(id identity, caps []string) error {
	mask, err := CapMask(caps)
	if err != nil {
		return err
	}
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		if mask&(1<<uint(c)) == 0 {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
				return fmt.Errorf("drop capability %d: %w", c, err)
			}
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(mask), Permitted: uint32(mask)},
		{Effective: uint32(mask >> 32), Permitted: uint32(mask >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	groups := make([]int, len(id.groups))
	for i, g := range id.groups {
		groups[i] = int(g)
	}
	if err := setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(id.gid), uintptr(id.gid), uintptr(id.gid)); e != 0 {
		return fmt.Errorf("setgid %d: %w", id.gid, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(id.uid), uintptr(id.uid), uintptr(id.uid)); e != 0 {
		return fmt.Errorf("setuid %d: %w", id.uid, e)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	return nil
}

// setgroups sets the supplementary groups of this thread only.
func setgroups(gids []int) error {
	if len(gids) == 0 {
		_, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0)
		if e != 0 {
			return e
		}
		return nil
	}
	a := make([]uint32, len(gids))
	for i, g := range gids {
		a[i] = uint32(g)
	}
	_, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(a)), uintptr(unsafe.Pointer(&a[0])), 0)
	if e != 0 {
		return e
	}
	return nil
}
