package cli

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/google/shlex"
	"github.com/spf13/pflag"

	"github.com/shoal-run/shoal/internal/ctrspec"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// containerFlags are the service flags of the container spec beyond the
// basic ones: mounts, and the rest of docker's container surface. Create
// takes each list whole (--mount, --sysctl, ...); update adds to it and
// removes from it (--mount-add, --mount-rm, ...), as docker's.
type containerFlags struct {
	lists               map[string]*listFlag
	envFiles            []string
	init, readOnly, tty bool
	stopSignal          string
	limitPids           int64
	capAdd, capDrop     []string
	logDriver           string
	logOpts             []string
	mounts              []string // --mount (create), registered with the rest of create's flags
}

// listFlag is one list of the container spec: the create flag, and
// update's -add and -rm.
type listFlag struct {
	create, add, rm []string
}

// containerLists are the list flags: the create flag's name (update's are
// NAME-add and NAME-rm) and what it holds.
var containerLists = []struct{ name, help string }{
	{"sysctl", "Sysctl options: KEY=VALUE (namespaced ones only: net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*)"},
	{"ulimit", "Ulimit options: NAME=SOFT[:HARD], e.g. nofile=1024:2048"},
	{"dns", "Set custom DNS servers"},
	{"dns-search", "Set custom DNS search domains"},
	{"dns-option", "Set DNS options"},
	{"host", "Set one or more custom host-to-IP mappings (host:ip)"},
	{"group", "Set one or more supplementary user groups for the container"},
}

func (f *containerFlags) register(fs *pflag.FlagSet, create bool) {
	f.lists = map[string]*listFlag{}
	for _, l := range containerLists {
		lf := &listFlag{}
		f.lists[l.name] = lf
		if create {
			fs.StringArrayVar(&lf.create, l.name, nil, l.help)
			continue
		}
		fs.StringArrayVar(&lf.add, l.name+"-add", nil, "Add or update: "+l.help)
		fs.StringArrayVar(&lf.rm, l.name+"-rm", nil, "Remove: "+l.help)
	}
	if create {
		fs.StringArrayVar(&f.envFiles, "env-file", nil, "Read in a file of environment variables")
	} else {
		lf := &listFlag{}
		f.lists["mount"] = lf
		fs.StringArrayVar(&lf.add, "mount-add", nil, "Add or update a mount on a service (same syntax as --mount)")
		fs.StringArrayVar(&lf.rm, "mount-rm", nil, "Remove a mount by its target path")
	}
	fs.BoolVar(&f.init, "init", false, "Use an init inside each service container to forward signals and reap processes")
	fs.BoolVar(&f.readOnly, "read-only", false, "Mount the container's root filesystem as read only")
	fs.BoolVarP(&f.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	fs.StringVar(&f.stopSignal, "stop-signal", "", "Signal to stop the container (default: the image's, or SIGTERM)")
	fs.Int64Var(&f.limitPids, "limit-pids", 0, "Limit maximum number of processes (default 0 = unlimited)")
	fs.StringArrayVar(&f.capAdd, "cap-add", nil, "Add Linux capabilities")
	fs.StringArrayVar(&f.capDrop, "cap-drop", nil, "Drop Linux capabilities")
	fs.StringVar(&f.logDriver, "log-driver", "", "Logging driver for service (json-file, the default and only one)")
	fs.StringArrayVar(&f.logOpts, "log-opt", nil, "Logging driver options: max-size=SIZE, max-file=N")
}

// apply sets the container spec's fields from the flags given (all of
// them on create).
func (f *containerFlags) apply(fs *pflag.FlagSet, t *shoalv1.TaskSpec, create bool) error {
	c := t.Container
	changed := func(name string) bool { return create || fs.Changed(name) }
	var err error
	if create {
		if c.Mounts, err = parseMounts("--mount", f.mounts, parseMount); err != nil {
			return err
		}
		for _, path := range f.envFiles {
			vars, err := readEnvFile(path)
			if err != nil {
				return err
			}
			c.Env = append(c.Env, vars...)
		}
	} else if c.Mounts, err = updateMounts(c.Mounts, f.lists["mount"]); err != nil {
		return err
	}
	if changed("init") {
		c.Init = f.init
	}
	if changed("read-only") {
		c.ReadOnly = f.readOnly
	}
	if changed("tty") {
		c.Tty = f.tty
	}
	if changed("stop-signal") {
		if f.stopSignal != "" {
			if _, err := ctrspec.ParseSignal(f.stopSignal); err != nil {
				return fmt.Errorf("--stop-signal: %w", err)
			}
		}
		c.StopSignal = f.stopSignal
	}
	if changed("limit-pids") {
		if f.limitPids < 0 {
			return fmt.Errorf("--limit-pids %d: give 0 (unlimited) or more", f.limitPids)
		}
		if t.Resources == nil {
			t.Resources = &shoalv1.ResourceRequirements{}
		}
		if t.Resources.Limits == nil {
			t.Resources.Limits = &shoalv1.Resources{}
		}
		t.Resources.Limits.Pids = f.limitPids
	}
	if create {
		c.CapAdd, c.CapDrop = normalizeCaps(f.capAdd), normalizeCaps(f.capDrop)
	} else {
		c.CapAdd, c.CapDrop = updateCaps(c.CapAdd, c.CapDrop, normalizeCaps(f.capAdd), normalizeCaps(f.capDrop))
	}
	if c.Sysctls, err = applyKV(c.Sysctls, f.lists["sysctl"].adds(create), f.lists["sysctl"].rm, "--sysctl"); err != nil {
		return err
	}
	if c.Ulimits, err = updateUlimits(c.Ulimits, f.lists["ulimit"], create); err != nil {
		return err
	}
	if err := f.applyDNS(c, create); err != nil {
		return err
	}
	if c.Hosts, err = updateHosts(c.Hosts, f.lists["host"], create); err != nil {
		return err
	}
	c.Groups = f.lists["group"].update(c.Groups, create)
	return f.applyLog(fs, t, create)
}

// adds is what the list gains: the create flag's values or update's -add.
func (l *listFlag) adds(create bool) []string {
	if create {
		return l.create
	}
	return l.add
}

// update is a plain list after the flags: create's whole, or update's
// with -rm's values removed and -add's appended.
func (l *listFlag) update(cur []string, create bool) []string {
	if create {
		return updateList(nil, l.create, nil)
	}
	return updateList(cur, l.add, l.rm)
}

func (f *containerFlags) applyDNS(c *shoalv1.ContainerSpec, create bool) error {
	d := c.DnsConfig
	if d == nil {
		d = &shoalv1.DNSConfig{}
	}
	servers := f.lists["dns"]
	for _, s := range servers.adds(create) {
		if net.ParseIP(s) == nil {
			return fmt.Errorf("--dns: IP address is not correctly formatted: %s", s)
		}
	}
	d.Nameservers = servers.update(d.Nameservers, create)
	d.Search = f.lists["dns-search"].update(d.Search, create)
	d.Options = f.lists["dns-option"].update(d.Options, create)
	c.DnsConfig = d
	if len(d.Nameservers)+len(d.Search)+len(d.Options) == 0 {
		c.DnsConfig = nil
	}
	return nil
}

// applyLog sets the log driver and its options. On update --log-opt
// replaces the options and keeps the driver (docker's ignores --log-opt
// without --log-driver).
func (f *containerFlags) applyLog(fs *pflag.FlagSet, t *shoalv1.TaskSpec, create bool) error {
	if !create && !fs.Changed("log-driver") && !fs.Changed("log-opt") {
		return nil
	}
	d := t.LogDriver
	if d == nil {
		d = &shoalv1.Driver{}
	}
	if create || fs.Changed("log-driver") {
		d.Name = f.logDriver
	}
	if create || fs.Changed("log-opt") {
		opts, err := applyKV(nil, f.logOpts, nil, "--log-opt")
		if err != nil {
			return err
		}
		d.Options = opts
	}
	if _, _, err := ctrspec.LogOptions(d.Name, d.Options); err != nil {
		return err
	}
	t.LogDriver = d
	if d.Name == "" && len(d.Options) == 0 {
		t.LogDriver = nil
	}
	return nil
}

// normalizeCaps spells capabilities as docker stores them: CAP_NET_ADMIN.
func normalizeCaps(caps []string) []string {
	var out []string
	for _, c := range caps {
		if n := ctrspec.NormalizeCap(c); !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// updateCaps adds to the added and dropped capabilities; a capability
// added is no longer dropped, and the other way round.
func updateCaps(curAdd, curDrop, add, drop []string) (outAdd, outDrop []string) {
	outAdd = updateList(curAdd, add, drop)
	outDrop = updateList(curDrop, drop, add)
	return outAdd, outDrop
}

// updateMounts removes the mounts at -rm's targets and adds -add's,
// replacing one at the same target.
func updateMounts(cur []*shoalv1.Mount, l *listFlag) ([]*shoalv1.Mount, error) {
	add, err := parseMounts("--mount-add", l.add, parseMount)
	if err != nil {
		return nil, err
	}
	drop := map[string]bool{}
	for _, t := range l.rm {
		drop[t] = true
	}
	for _, m := range add {
		drop[m.GetTarget()] = true
	}
	var out []*shoalv1.Mount
	for _, m := range cur {
		if !drop[m.GetTarget()] {
			out = append(out, m)
		}
	}
	return append(out, add...), nil
}

// updateUlimits sets the ulimits by name: create's whole, or update's
// with -rm's names removed and -add's set.
func updateUlimits(cur []*shoalv1.Ulimit, l *listFlag, create bool) ([]*shoalv1.Ulimit, error) {
	if create {
		cur = nil
	}
	byName := map[string]*shoalv1.Ulimit{}
	var order []string
	for _, u := range cur {
		byName[u.GetName()] = u
		order = append(order, u.GetName())
	}
	for _, name := range l.rm {
		name, _, _ = strings.Cut(name, "=")
		delete(byName, name)
	}
	for _, s := range l.adds(create) {
		u, err := ctrspec.ParseUlimit(s)
		if err != nil {
			return nil, fmt.Errorf("--ulimit: %w", err)
		}
		if _, ok := byName[u.Name]; !ok {
			order = append(order, u.Name)
		}
		byName[u.Name] = &shoalv1.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard}
	}
	var out []*shoalv1.Ulimit
	for _, n := range order {
		if u, ok := byName[n]; ok {
			out = append(out, u)
			delete(byName, n)
		}
	}
	return out, nil
}

// hostLine turns docker's --host HOST:IP (or HOST=IP) into an /etc/hosts
// line, "IP HOST".
func hostLine(s string) (string, error) {
	sep := strings.IndexAny(s, "=:")
	if i := strings.Index(s, "="); i >= 0 {
		sep = i
	}
	if sep <= 0 || net.ParseIP(s[sep+1:]) == nil {
		return "", fmt.Errorf("invalid argument %q for \"--host\" flag: want HOST:IP, e.g. db:10.0.0.5", s)
	}
	return s[sep+1:] + " " + s[:sep], nil
}

// updateHosts sets the extra /etc/hosts lines: -rm takes HOST (every line
// of that name) or HOST:IP (that line).
func updateHosts(cur []string, l *listFlag, create bool) ([]string, error) {
	if create {
		cur = nil
	}
	var out []string
	for _, line := range cur {
		f := strings.Fields(line)
		keep := true
		for _, r := range l.rm {
			if exact, err := hostLine(r); err == nil && exact == line || len(f) > 1 && f[1] == r {
				keep = false
			}
		}
		if keep {
			out = append(out, line)
		}
	}
	for _, s := range l.adds(create) {
		line, err := hostLine(s)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, line) {
			out = append(out, line)
		}
	}
	return out, nil
}

// parseEntrypoint splits --entrypoint with shell quoting, as docker's
// service flag does; "" clears the image's entrypoint.
func parseEntrypoint(s string) ([]string, error) {
	words, err := shlex.Split(s)
	if err != nil {
		return nil, fmt.Errorf("--entrypoint %q: %w", s, err)
	}
	return words, nil
}
