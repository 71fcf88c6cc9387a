// Command netem adds delay and loss to the packets leaving one device of
// the network namespace it runs in, until SIGINT or SIGTERM; see package
// tests/netem for how and why (the test kernel has no sch_netem). Run it
// inside the namespace:
//
//	nsenter --net=/run/netns/NAME -- netem -dev eth0 -delay 100ms -loss 0.01
//
// It prints the line "ready" on stdout once packets are being shaped, and
// exits 0 after removing its nftables table when signalled.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/shoal-run/shoal/tests/netem"
)

func main() {
	dev := flag.String("dev", "", "network device whose outgoing packets are shaped (required)")
	delay := flag.Duration("delay", 0, "delay added to every packet that is not lost")
	loss := flag.Float64("loss", 0, "probability (0..1) that a packet is dropped")
	queue := flag.Uint("queue", 0, "NFQUEUE queue number (0..65535)")
	seed := flag.Int64("seed", 1, "seed of the loss decisions")
	flag.Parse()
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	if flag.NArg() > 0 || *queue > 65535 {
		flag.Usage()
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := netem.Run(ctx, netem.Config{
		Dev:   *dev,
		Delay: *delay,
		Loss:  *loss,
		Queue: uint16(*queue),
		Seed:  *seed,
		Ready: func() { fmt.Println("ready") },
	})
	if err != nil {
		log.Print(err)
		os.Exit(1)
	}
}
