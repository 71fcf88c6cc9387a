package dispatcher

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/logging"
	"github.com/shoal-run/shoal/manager/allocator"
	"github.com/shoal-run/shoal/manager/auth"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Standalone containers (shoal run --network) on attachable networks: the
// node names the attachment, the leader gives it an address and keeps it
// in the node object, where the allocator sees it as used until the node
// detaches it (or is removed).

// maxAttachRetries bounds the retries of a node update that lost a race
// with another write of the same node (a heartbeat, a status change).
const maxAttachRetries = 10

func (d *Dispatcher) AttachNetwork(ctx context.Context, req *shoalv1.AttachNetworkRequest) (*shoalv1.AttachNetworkResponse, error) {
	caller, _ := auth.From(ctx)
	if req.GetId() == "" || len(req.GetId()) > 64 {
		return nil, fmt.Errorf("attachment id: must be 1 to 64 characters: %w", errdefs.ErrInvalid)
	}
	if req.GetNetwork() == "" {
		return nil, fmt.Errorf("network: is required: %w", errdefs.ErrInvalid)
	}
	for attempt := 0; ; attempt++ {
		att, err := d.attachOnce(ctx, caller.NodeID, req)
		if err == nil {
			return &shoalv1.AttachNetworkResponse{Attachment: att}, nil
		}
		if !errdefs.Is(err, errdefs.ErrConflict) || attempt >= maxAttachRetries || ctx.Err() != nil {
			return nil, err
		}
	}
}

func (d *Dispatcher) attachOnce(ctx context.Context, nodeID string, req *shoalv1.AttachNetworkRequest) (*shoalv1.ContainerAttachment, error) {
	var (
		att  *shoalv1.ContainerAttachment
		next *shoalv1.Node
		ver  uint64
	)
	release, err := d.cfg.Book.Do(func(h *allocator.Held) error {
		var (
			node *shoalv1.Node
			a    *shoalv1.ContainerAttachment
			err  error
		)
		d.cfg.Store.View(func(r store.ReadTx) {
			node = store.Get[*shoalv1.Node](r, store.TableNode, nodeID)
			if node == nil {
				return
			}
			for _, have := range node.GetAttachments() {
				if have.GetId() == req.GetId() {
					att = have // asked again: the same answer
					return
				}
			}
			var nw *shoalv1.Network
			if nw, err = store.Find[*shoalv1.Network](r, store.TableNetwork, req.GetNetwork(), "network"); err != nil {
				return
			}
			a, err = allocator.AttachContainer(nw, req.GetId(), req.GetContainerName(),
				func(network string, ip netip.Addr) bool { return store.AddrInUse(r, network, ip) }, h)
			if err != nil {
				err = fmt.Errorf("%w: %w", err, errdefs.ErrFailedPrecond)
			}
		})
		if node == nil {
			return fmt.Errorf("node %s is not in the cluster: %w", nodeID, errdefs.ErrNotFound)
		}
		if att != nil {
			return nil
		}
		if err != nil {
			return err
		}
		a.CreatedAt = timestamppb.New(d.cfg.Clock.Now())
		att = a
		next = proto.Clone(node).(*shoalv1.Node)
		next.Attachments = append(next.Attachments, a)
		ver = node.GetMeta().GetVersion()
		return nil
	})
	defer release()
	if err != nil || next == nil {
		return att, err
	}
	if _, err := d.cfg.Raft.Propose(ctx, &shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{{
		Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE, Object: store.Wrap(next), ExpectedVersion: ver,
	}}}); err != nil {
		return nil, err
	}
	d.cfg.Log.Info("container attached to a network", logging.Node(nodeID), zap.String("network", att.GetNetwork().GetNetworkName()),
		zap.String("container", att.GetContainerName()), zap.String("addr", att.GetNetwork().GetAddr()))
	return att, nil
}

func (d *Dispatcher) DetachNetwork(ctx context.Context, req *shoalv1.DetachNetworkRequest) (*shoalv1.DetachNetworkResponse, error) {
	caller, _ := auth.From(ctx)
	for attempt := 0; ; attempt++ {
		var node *shoalv1.Node
		d.cfg.Store.View(func(r store.ReadTx) { node = store.Get[*shoalv1.Node](r, store.TableNode, caller.NodeID) })
		i := slices.IndexFunc(node.GetAttachments(), func(a *shoalv1.ContainerAttachment) bool { return a.GetId() == req.GetId() })
		if i < 0 {
			return &shoalv1.DetachNetworkResponse{}, nil
		}
		next := proto.Clone(node).(*shoalv1.Node)
		next.Attachments = slices.Delete(next.Attachments, i, i+1)
		_, err := d.cfg.Raft.Propose(ctx, &shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{{
			Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE, Object: store.Wrap(next), ExpectedVersion: node.GetMeta().GetVersion(),
		}}})
		if err == nil {
			return &shoalv1.DetachNetworkResponse{}, nil
		}
		if !errdefs.Is(err, errdefs.ErrConflict) || attempt >= maxAttachRetries || ctx.Err() != nil {
			return nil, err
		}
	}
}

// attachmentIDs lists a node's attachments for its heartbeat answer.
func attachmentIDs(n *shoalv1.Node) []string {
	var out []string
	for _, a := range n.GetAttachments() {
		out = append(out, a.GetId())
	}
	return out
}
