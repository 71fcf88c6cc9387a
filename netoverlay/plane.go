package netoverlay

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Plane manages the overlay devices in one network namespace, the node's.
// It holds rtnetlink sockets opened in that namespace, so its calls act on
// it whichever thread runs them; tests point it at a namespace they made.
//
// A Plane remembers the configuration and peers of the networks it set up
// since New; Attach and SetPeers need EnsureNetwork to have run first. Its
// methods may be called from several goroutines; they run one at a time.
type Plane struct {
	log *zap.Logger

	mu   sync.Mutex
	h    *netlink.Handle
	raw  map[int]*nl.SocketHandle // for the bridge attributes the Handle cannot set
	nets map[string]*network
}

// network is what a Plane knows of one network it set up.
type network struct {
	cfg   Config
	peers []Peer // as last given to SetPeers, already validated
}

// socketTimeout bounds each netlink request, so a wedged kernel call turns
// into an error instead of a hung daemon.
const socketTimeout = 10 * time.Second

// New opens a Plane on the network namespace at nsPath (a /run/netns entry
// or /proc/PID/ns/net); "" is the namespace of the calling thread, which is
// normally the process's own.
func New(nsPath string, log *zap.Logger) (*Plane, error) {
	if log == nil {
		log = zap.NewNop()
	}
	ns := netns.None()
	if nsPath != "" {
		var err error
		if ns, err = netns.GetFromPath(nsPath); err != nil {
			return nil, fmt.Errorf("open network namespace %s: %w", nsPath, err)
		}
		defer ns.Close() // the sockets keep the namespace
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink in network namespace %q: %w", nsPath, err)
	}
	if err := h.SetSocketTimeout(socketTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink socket timeout: %w", err)
	}
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink in network namespace %q: %w", nsPath, err)
	}
	tv := unix.NsecToTimeval(socketTimeout.Nanoseconds())
	if err := errors.Join(s.SetSendTimeout(&tv), s.SetReceiveTimeout(&tv)); err != nil {
		s.Close()
		h.Close()
		return nil, fmt.Errorf("netlink socket timeout: %w", err)
	}
	return &Plane{
		log:  log.Named("netoverlay"),
		h:    h,
		raw:  map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}},
		nets: map[string]*network{},
	}, nil
}

// Close releases the Plane's sockets. The devices stay: they outlive the
// daemon, and the next one reconciles them.
func (p *Plane) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.h == nil {
		return nil
	}
	p.h.Close()
	for _, s := range p.raw {
		s.Close()
	}
	p.h, p.raw = nil, nil
	return nil
}

var errClosed = errors.New("netoverlay: plane is closed")

// lock takes the Plane's lock and fails if the Plane is closed.
func (p *Plane) lock() error {
	p.mu.Lock()
	if p.h == nil {
		p.mu.Unlock()
		return errClosed
	}
	return nil
}

// linkByName returns the named link, or nil when there is none.
func linkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up link %s: %w", name, err)
	}
	return l, nil
}

// dumpRetries is how often a dump interrupted by a concurrent change is
// retried before its (possibly incomplete) result is reported as an error.
const dumpRetries = 5

// dump runs a netlink dump, retrying it while the kernel reports that a
// concurrent change interrupted it.
func dump[T any](f func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range dumpRetries {
		v, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, err
}
