package netoverlay

import (
	"fmt"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// bridgeSTP is a bridge's spanning-tree state and forward delay (in
// clock_t, hundredths of a second), which netlink.Bridge does not carry.
type bridgeSTP struct {
	stp          uint32
	forwardDelay uint32
}

// getBridgeSTP reads the spanning-tree attributes of the bridge with the
// given index.
func (p *Plane) getBridgeSTP(index int) (bridgeSTP, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	req.Sockets = p.raw
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return bridgeSTP{}, err
	}
	if len(msgs) != 1 || len(msgs[0]) < unix.SizeofIfInfomsg {
		return bridgeSTP{}, fmt.Errorf("link %d: %d answers to a link query", index, len(msgs))
	}
	var st bridgeSTP
	err = eachAttr(msgs[0][unix.SizeofIfInfomsg:], unix.IFLA_LINKINFO, func(info []byte) error {
		return eachAttr(info, nl.IFLA_INFO_DATA, func(data []byte) error {
			attrs, err := nl.ParseRouteAttr(data)
			if err != nil {
				return err
			}
			for _, a := range attrs {
				if len(a.Value) < 4 {
					continue
				}
				switch a.Attr.Type {
				case nl.IFLA_BR_STP_STATE:
					st.stp = nl.NativeEndian().Uint32(a.Value)
				case nl.IFLA_BR_FORWARD_DELAY:
					st.forwardDelay = nl.NativeEndian().Uint32(a.Value)
				}
			}
			return nil
		})
	})
	return st, err
}

// eachAttr calls f with the value of each attribute of type typ in b.
func eachAttr(b []byte, typ uint16, f func([]byte) error) error {
	attrs, err := nl.ParseRouteAttr(b)
	if err != nil {
		return err
	}
	for _, a := range attrs {
		if a.Attr.Type&^unix.NLA_F_NESTED == typ {
			if err := f(a.Value); err != nil {
				return err
			}
		}
	}
	return nil
}

// setBridgeNoSTP turns spanning tree off on the bridge with the given index
// and its forward delay to zero, so a new port forwards at once instead of
// listening and learning for 15 seconds should STP ever be turned on.
func (p *Plane) setBridgeNoSTP(index int) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	req.Sockets = p.raw
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	// The kernel applies the forward delay before the STP state and only
	// accepts zero with STP off, which a new bridge is.
	data.AddRtAttr(nl.IFLA_BR_STP_STATE, nl.Uint32Attr(0))
	data.AddRtAttr(nl.IFLA_BR_FORWARD_DELAY, nl.Uint32Attr(0))
	req.AddData(info)
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// ensureBridgeNoSTP makes STP off and the forward delay zero, changing
// nothing when they already are.
func (p *Plane) ensureBridgeNoSTP(index int) error {
	st, err := p.getBridgeSTP(index)
	if err != nil {
		return fmt.Errorf("read spanning-tree state: %w", err)
	}
	if st == (bridgeSTP{}) {
		return nil
	}
	if err := p.setBridgeNoSTP(index); err != nil {
		return fmt.Errorf("turn spanning tree off: %w", err)
	}
	return nil
}
