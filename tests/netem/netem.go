// Package netem adds delay and packet loss to one network device, in
// userspace, for tests that need a bad network between real daemons (for
// example: no node is falsely declared down under 100 ms of delay and 1%
// loss).
//
// Why not tc netem: the test kernel has no sch_netem qdisc and cannot load
// modules ("Specified qdisc kind is unknown"), but it has nf_tables and
// nfnetlink_queue. So Run installs an nftables rule that sends every packet
// leaving the device to an NFQUEUE queue, binds that queue itself over
// netlink (no nft binary, no iptables, no libnetfilter_queue), and gives
// each packet its verdict later: ACCEPT after Delay, or DROP with
// probability Loss. Verdicts are issued in arrival order, so the link stays
// FIFO like a real one. The rule uses nft's queue statement where the
// kernel has it; the test kernel lacks that too (no CONFIG_NFT_QUEUE), so
// there the rule uses the xtables NFQUEUE target through nft_compat.
//
// Only egress is shaped: to delay both directions of a link, run one netem
// on each end. Run acts on the network namespace of the calling process, so
// start it inside the target namespace (tests/cmd/netem under
// `nsenter --net=/run/netns/NAME`). Run one netem per namespace: they share
// the table name, and a new one replaces the table it finds.
//
// Failures are benign: the rule carries the queue bypass flag and the queue
// is fail-open, so a dead or overrun netem lets packets through undelayed
// rather than blackholing the link. A SIGKILLed netem leaves its table
// behind (harmless, by bypass); the next Run replaces it. A Run whose ctx
// ends removes everything and releases the packets it still holds.
package netem

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"
)

// Config says what to do to which device.
type Config struct {
	// Dev is the network device whose outgoing packets are shaped, in the
	// caller's network namespace.
	Dev string
	// Delay is added to every packet that is not lost.
	Delay time.Duration
	// Loss is the probability (0..1) that a packet is dropped.
	Loss float64
	// Queue is the NFQUEUE queue number (per network namespace).
	Queue uint16
	// Seed seeds the loss decisions.
	Seed int64
	// Ready, if set, is called once the rule is installed and the queue
	// bound: from then on packets on Dev are shaped.
	Ready func()
	// Logf, if set, receives diagnostics (overruns, a replaced leftover
	// table, the final counts); nil means log.Printf.
	Logf func(format string, args ...any)
}

// pending is a queued packet waiting for its verdict.
type pending struct {
	id     uint32
	due    time.Time
	accept bool
}

// drainWindow is how long, after the rule is gone, Run keeps reading
// packets the kernel had already queued, so they are accepted rather than
// dropped when the table and the queue go.
const drainWindow = 50 * time.Millisecond

// Run shapes packets leaving cfg.Dev until ctx ends, then removes the
// nftables table, unbinds the queue and returns nil. It must be called by
// a process already inside the target network namespace, with
// CAP_NET_ADMIN there.
func Run(ctx context.Context, cfg Config) (err error) {
	if err := cfg.validate(); err != nil {
		return err
	}
	logf := cfg.Logf
	if logf == nil {
		logf = log.Printf
	}
	if _, err := net.InterfaceByName(cfg.Dev); err != nil {
		return fmt.Errorf("netem: device %q: %w (is this process in the right network namespace?)", cfg.Dev, err)
	}

	q, err := bindQueue(cfg.Queue)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := q.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()

	replaced, compat, err := installRule(cfg.Dev, cfg.Queue)
	if err != nil {
		return err
	}
	if replaced {
		logf("netem: replaced a leftover nftables table inet %s", TableName)
	}
	if compat {
		logf("netem: kernel has no nft queue expression; queueing with the xt NFQUEUE target (nft_compat)")
	}
	tableUp := true
	defer func() {
		if tableUp {
			err = errors.Join(err, removeTable())
		}
	}()

	var accepted, dropped atomic.Int64
	fifo := make(chan pending, queueMaxLen)
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6e6574656d)) // only the receive goroutine uses it
	recvDone := make(chan error, 1)
	go func() {
		recvDone <- q.receive(func(id uint32) {
			fifo <- pending{
				id:     id,
				due:    time.Now().Add(cfg.Delay),
				accept: cfg.Loss == 0 || rng.Float64() >= cfg.Loss,
			}
		}, logf)
	}()

	draining := make(chan struct{})
	verdictsDone := make(chan struct{})
	go func() {
		defer close(verdictsDone)
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		for p := range fifo {
			if p.accept {
				if d := time.Until(p.due); d > 0 {
					timer.Reset(d)
					select {
					case <-timer.C:
					case <-draining:
					}
				}
				accepted.Add(1)
			} else {
				dropped.Add(1)
			}
			if err := q.verdict(p.id, p.accept); err != nil {
				logf("netem: verdict for packet %d: %v", p.id, err)
			}
		}
	}()

	if cfg.Ready != nil {
		cfg.Ready()
	}

	var recvErr error
	select {
	case <-ctx.Done():
	case recvErr = <-recvDone:
		// The socket failed (it returns nil only after a deadline,
		// which nothing set yet): shut down and report it.
		if recvErr == nil {
			recvErr = errors.New("netem: nfqueue receive stopped unexpectedly")
		}
	}

	// Shutdown, losing nothing: first delete the rule so no new packets
	// are queued, then give everything still queued its verdict at once
	// (in order), and only then delete the table. Deleting the table
	// unregisters its hook, and the kernel drops every packet still
	// queued in the namespace when a hook goes; deleting a rule does not.
	// Unbinding is deferred.
	rerr := flushRules()
	close(draining)
	if recvErr == nil {
		_ = q.conn.SetReadDeadline(time.Now().Add(drainWindow))
		recvErr = <-recvDone
	}
	close(fifo)
	<-verdictsDone
	tableUp = false
	rerr = errors.Join(rerr, removeTable())
	logf("netem: %s: %d packets accepted after %v, %d dropped (loss %g)", cfg.Dev, accepted.Load(), cfg.Delay, dropped.Load(), cfg.Loss)
	return errors.Join(recvErr, rerr)
}

func (cfg Config) validate() error {
	switch {
	case cfg.Dev == "":
		return errors.New("netem: no device given")
	case len(cfg.Dev) >= 16: // IFNAMSIZ with its NUL
		return fmt.Errorf("netem: device name %q is longer than 15 bytes", cfg.Dev)
	case cfg.Delay < 0:
		return fmt.Errorf("netem: negative delay %v", cfg.Delay)
	case math.IsNaN(cfg.Loss) || cfg.Loss < 0 || cfg.Loss > 1:
		return fmt.Errorf("netem: loss %v is not a probability in [0, 1]", cfg.Loss)
	}
	return nil
}
