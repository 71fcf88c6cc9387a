package controlapi

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/manager/addrs"
	"github.com/shoal-run/shoal/manager/allocator"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// ValidateNetworkSpec checks a network spec; subnet and gateway are
// optional (allocated when empty).
// validNetworkOptions checks the overlay driver's options: the MTU, and
// docker's others refused with why.
func validNetworkOptions(f *fieldErrors, opts map[string]string) {
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := opts[k]
		switch k {
		case allocator.OptionMTU:
			n, err := strconv.Atoi(v)
			if err != nil || n < allocator.MinMTU || n > allocator.MaxMTU {
				f.add("network.options."+k, "%q is not an MTU from %d to %d", v, allocator.MinMTU, allocator.MaxMTU)
			}
		case "encrypted":
			f.add("network.options.encrypted", "not supported: Shoal's overlay does not encrypt its traffic (no IPsec or WireGuard on these nodes); run it on a private network, or leave the option out")
		case "com.docker.network.driver.overlay.vxlanid_list":
			f.add("network.options."+k, "not supported: the managers choose each network's VXLAN ID")
		default:
			f.add("network.options."+k, "unknown option of the overlay driver: the only one is %s", allocator.OptionMTU)
		}
	}
}

func ValidateNetworkSpec(s *shoalv1.NetworkSpec) error {
	var f fieldErrors
	if s == nil {
		f.add("network", "a spec is required")
		return f.err()
	}
	validName(&f, "network.name", s.GetName())
	validLabels(&f, "network.labels", s.GetLabels())
	if d := s.GetDriver(); d != "" && d != allocator.DriverOverlay {
		f.add("network.driver", "%q is not supported: use overlay", d)
	}
	validNetworkOptions(&f, s.GetOptions())
	var subnet netip.Prefix
	if c := s.GetSubnet(); c != "" {
		p, err := netip.ParsePrefix(c)
		switch {
		case err != nil || !p.Addr().Is4():
			f.add("network.subnet", "%q is not an IPv4 CIDR such as 10.1.0.0/24", c)
		case p.Masked() != p:
			f.add("network.subnet", "%q has host bits set; did you mean %s?", c, p.Masked())
		case p.Bits() < 8 || p.Bits() > 29:
			f.add("network.subnet", "%s: the prefix length must be between /8 and /29", c)
		default:
			subnet = p
		}
	}
	if g := s.GetGateway(); g != "" {
		a, err := netip.ParseAddr(g)
		switch {
		case s.GetSubnet() == "":
			f.add("network.gateway", "needs a subnet (--subnet) to be inside of")
		case err != nil || !a.Is4():
			f.add("network.gateway", "%q is not an IPv4 address", g)
		case subnet.IsValid() && (!subnet.Contains(a) || a == subnet.Addr() || a == lastAddr(subnet)):
			f.add("network.gateway", "%s is not a host address of the subnet %s", a, subnet)
		}
	}
	return f.err()
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n |= 1<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// CreateNetwork validates, allocates and stores a network.
func (s *Server) CreateNetwork(ctx context.Context, req *shoalv1.CreateNetworkRequest) (*shoalv1.CreateNetworkResponse, error) {
	spec := clone(req.GetSpec())
	if spec == nil {
		spec = &shoalv1.NetworkSpec{}
	}
	if spec.Driver == "" {
		spec.Driver = allocator.DriverOverlay
	}
	if err := ValidateNetworkSpec(spec); err != nil {
		return nil, err
	}
	c, err := s.cluster()
	if err != nil {
		return nil, err
	}
	p, err := allocator.ClusterPools(c)
	if err != nil {
		return nil, fmt.Errorf("the cluster's address pools: %v: %w", err, errdefs.ErrFailedPrecond)
	}
	var existing []*shoalv1.Network
	s.Store.View(func(r store.ReadTx) { existing = store.List[*shoalv1.Network](r, store.TableNetwork) })
	for _, n := range existing {
		if n.GetSpec().GetName() == spec.GetName() {
			return nil, fmt.Errorf("network name %q is already in use by %s: %w", spec.GetName(), n.GetId(), errdefs.ErrAlreadyExists)
		}
		if spec.GetIngress() && n.GetSpec().GetIngress() {
			return nil, fmt.Errorf("network.ingress: network %q is already the ingress network; remove it first: %w", n.GetSpec().GetName(), errdefs.ErrAlreadyExists)
		}
	}
	var alloc *shoalv1.NetworkAllocation
	release, err := s.book().Do(func(h *allocator.Held) (err error) {
		// Read again under the book: an allocation released since the
		// first read is in the store now.
		s.Store.View(func(r store.ReadTx) { existing = store.List[*shoalv1.Network](r, store.TableNetwork) })
		alloc, err = allocator.AllocateNetwork(spec, p, existing, h)
		return err
	})
	defer release()
	if err != nil {
		return nil, err
	}
	now := timestamppb.New(s.Clock.Now())
	nw := &shoalv1.Network{Id: store.NewID(), Meta: &shoalv1.Meta{CreatedAt: now, UpdatedAt: now}, Spec: spec, Allocation: alloc}
	idx, err := s.propose(ctx, create(nw))
	if err != nil {
		return nil, err
	}
	nw.Meta.Version = idx
	return &shoalv1.CreateNetworkResponse{Network: nw}, nil
}

func (s *Server) findNetwork(ref string) (*shoalv1.Network, error) {
	var nw *shoalv1.Network
	var err error
	s.Store.View(func(r store.ReadTx) { nw, err = store.Find[*shoalv1.Network](r, store.TableNetwork, ref, "network") })
	return nw, err
}

// GetNetwork returns a network by ID, name or ID prefix.
func (s *Server) GetNetwork(ctx context.Context, req *shoalv1.GetNetworkRequest) (*shoalv1.GetNetworkResponse, error) {
	nw, err := s.findNetwork(req.GetNetworkId())
	if err != nil {
		return nil, err
	}
	return &shoalv1.GetNetworkResponse{Network: nw}, nil
}

// ListNetworks returns every network.
func (s *Server) ListNetworks(ctx context.Context, req *shoalv1.ListNetworksRequest) (*shoalv1.ListNetworksResponse, error) {
	f, err := parseFilters(req.GetFilters(), networkFilters...)
	if err != nil {
		return nil, err
	}
	var all []*shoalv1.Network
	s.Store.View(func(r store.ReadTx) { all = store.List[*shoalv1.Network](r, store.TableNetwork) })
	return &shoalv1.ListNetworksResponse{Networks: keep(all, f.network)}, nil
}

// RemoveNetwork deletes a network no service uses and no task is still
// attached to.
func (s *Server) RemoveNetwork(ctx context.Context, req *shoalv1.RemoveNetworkRequest) (*shoalv1.RemoveNetworkResponse, error) {
	nw, err := s.findNetwork(req.GetNetworkId())
	if err != nil {
		return nil, err
	}
	var users, containers []string
	attached := 0
	var holders []string
	s.Store.View(func(r store.ReadTx) {
		for _, n := range store.List[*shoalv1.Node](r, store.TableNode) {
			for _, a := range n.GetAttachments() {
				if a.GetNetwork().GetNetworkId() == nw.GetId() {
					host := n.GetDescription().GetHostname()
					if host == "" {
						host = n.GetId()
					}
					containers = append(containers, fmt.Sprintf("%s on %s", a.GetContainerName(), host))
				}
			}
		}
		for _, svc := range store.List[*shoalv1.Service](r, store.TableService) {
			if usesNetwork(svc, nw) {
				users = append(users, svc.GetSpec().GetName())
			}
		}
		for _, t := range store.List[*shoalv1.Task](r, store.TableTask) {
			for _, a := range t.GetNetworks() {
				if a.GetNetworkId() == nw.GetId() && addrs.TaskHolds(t) {
					attached++
					if len(holders) < 3 {
						holders = append(holders, fmt.Sprintf("%s %s", t.GetId(), strings.ToLower(strings.TrimPrefix(t.GetStatus().GetState().String(), "TASK_STATE_"))))
					}
				}
			}
		}
	})
	if len(users) > 0 {
		sort.Strings(users)
		return nil, fmt.Errorf("network %q is in use by service %s: remove them or detach the network (service update --network-rm) first: %w",
			nw.GetSpec().GetName(), strings.Join(users, ", "), errdefs.ErrFailedPrecond)
	}
	if len(containers) > 0 {
		sort.Strings(containers)
		return nil, fmt.Errorf("network %q is in use by container %s: remove them (shoal rm -f on their node) first: %w",
			nw.GetSpec().GetName(), strings.Join(containers, ", "), errdefs.ErrFailedPrecond)
	}
	if attached > 0 {
		return nil, fmt.Errorf("network %q still has %d task interfaces while their containers stop (task %s); try again in a moment: %w",
			nw.GetSpec().GetName(), attached, strings.Join(holders, ", task "), errdefs.ErrFailedPrecond)
	}
	if _, err := s.propose(ctx, remove(nw, nw.GetMeta().GetVersion())); err != nil {
		return nil, err
	}
	return &shoalv1.RemoveNetworkResponse{}, nil
}

// usesNetwork reports whether a service is attached to nw, directly or,
// for the ingress network, through a port it publishes in ingress mode.
func usesNetwork(svc *shoalv1.Service, nw *shoalv1.Network) bool {
	for _, a := range svc.GetSpec().GetNetworks() {
		if a.GetTarget() == nw.GetId() || a.GetTarget() == nw.GetSpec().GetName() {
			return true
		}
	}
	return nw.GetSpec().GetIngress() && allocator.Publishes(svc.GetSpec())
}

// prepareEndpoint resolves the spec's networks to their IDs (in place)
// and allocates the service's endpoint: VIPs and published ports, keeping
// what cur has. release must be called once the write is applied or
// failed.
func (s *Server) prepareEndpoint(spec *shoalv1.ServiceSpec, cur *shoalv1.Service) (ep *shoalv1.ServiceEndpoint, release func(), err error) {
	var f fieldErrors
	seen := map[string]bool{}
	s.Store.View(func(r store.ReadTx) {
		for i, a := range spec.GetNetworks() {
			field := fmt.Sprintf("service.networks[%d]", i)
			nw, err := store.Find[*shoalv1.Network](r, store.TableNetwork, a.GetTarget(), "network")
			switch {
			case errdefs.Is(err, errdefs.ErrNotFound):
				f.add(field, "network %q not found: create it first (shoal network create %s)", a.GetTarget(), a.GetTarget())
			case err != nil:
				f.add(field, "%v", err)
			case nw.GetSpec().GetIngress():
				f.add(field, "the ingress network %q is joined by publishing a port (--publish), not with --network", nw.GetSpec().GetName())
			case seen[nw.GetId()]:
				f.add(field, "network %q is attached twice", nw.GetSpec().GetName())
			default:
				seen[nw.GetId()] = true
				a.Target = nw.GetId()
			}
		}
	})
	if err := f.err(); err != nil {
		return nil, func() {}, err
	}
	if len(spec.GetNetworks()) == 0 && !allocator.Publishes(spec) {
		// Nothing to allocate: skip reading every service and task.
		ep = &shoalv1.ServiceEndpoint{}
		for _, p := range spec.GetEndpoint().GetPorts() {
			ep.Ports = append(ep.Ports, clone(p))
		}
		return ep, func() {}, nil
	}
	release, err = s.book().Do(func(h *allocator.Held) (err error) {
		in := allocator.Endpoint{Spec: spec, Current: cur, Networks: map[string]*shoalv1.Network{}}
		s.Store.View(func(r store.ReadTx) {
			for _, n := range store.List[*shoalv1.Network](r, store.TableNetwork) {
				in.Networks[n.GetId()] = n
				if n.GetSpec().GetIngress() {
					in.Ingress = n
				}
			}
			// The store's indexes answer for every address and port
			// considered: no scan of every service and task.
			in.Used = func(network string, a netip.Addr) bool { return store.AddrInUse(r, network, a) }
			in.PortInUse = func(key string) bool { return store.PortInUse(r, key, cur.GetId()) }
			ep, err = allocator.AllocateEndpoint(in, h)
		})
		if errors.Is(err, allocator.ErrExhausted) {
			return fmt.Errorf("%v: %w", err, errdefs.ErrFailedPrecond)
		}
		if err != nil {
			return fmt.Errorf("%v: %w", err, errdefs.ErrInvalid)
		}
		return nil
	})
	return ep, release, err
}
