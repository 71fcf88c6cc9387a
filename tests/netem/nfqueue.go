package netem

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The nfnetlink_queue protocol, from <linux/netfilter/nfnetlink_queue.h>
// and <linux/netfilter/nfnetlink.h>; golang.org/x/sys/unix does not
// define these. Multi-byte fields inside the attributes are big-endian.
const (
	nfnlSubsysQueue = 3 // NFNL_SUBSYS_QUEUE

	// enum nfqnl_msg_types
	nfqnlMsgPacket  = 0 // NFQNL_MSG_PACKET: kernel -> user
	nfqnlMsgVerdict = 1 // NFQNL_MSG_VERDICT: user -> kernel
	nfqnlMsgConfig  = 2 // NFQNL_MSG_CONFIG

	// enum nfqnl_attr_type
	nfqaPacketHdr  = 1 // NFQA_PACKET_HDR: struct nfqnl_msg_packet_hdr
	nfqaVerdictHdr = 2 // NFQA_VERDICT_HDR: struct nfqnl_msg_verdict_hdr

	// enum nfqnl_attr_config
	nfqaCfgCmd         = 1 // NFQA_CFG_CMD: struct nfqnl_msg_config_cmd
	nfqaCfgParams      = 2 // NFQA_CFG_PARAMS: struct nfqnl_msg_config_params
	nfqaCfgQueueMaxlen = 3 // NFQA_CFG_QUEUE_MAXLEN: be32
	nfqaCfgMask        = 4 // NFQA_CFG_MASK: be32
	nfqaCfgFlags       = 5 // NFQA_CFG_FLAGS: be32

	// enum nfqnl_msg_config_cmds
	nfqnlCfgCmdBind   = 1 // NFQNL_CFG_CMD_BIND
	nfqnlCfgCmdUnbind = 2 // NFQNL_CFG_CMD_UNBIND

	nfqnlCopyMeta = 1 // NFQNL_COPY_META: metadata only, no payload

	nfqaCfgFFailOpen = 1 << 0 // NFQA_CFG_F_FAIL_OPEN

	nfDrop   = 0 // NF_DROP
	nfAccept = 1 // NF_ACCEPT
)

const (
	// queueMaxLen is how many packets the kernel holds for us before
	// (fail-open) letting further ones through undelayed.
	queueMaxLen = 8192
	// rcvBuf is the socket receive buffer: room for queueMaxLen
	// metadata-only packet messages (each skb is charged ~1 KiB).
	rcvBuf = 16 << 20
)

// nfq is one bound NFQUEUE queue.
type nfq struct {
	conn *netlink.Conn
	num  uint16
}

// bindQueue opens a NETLINK_NETFILTER socket in the current network
// namespace and binds it to queue num in metadata-only copy mode.
func bindQueue(num uint16) (*nfq, error) {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("netem: open netfilter netlink socket: %w", err)
	}
	q := &nfq{conn: conn, num: num}
	if err := q.setRcvBuf(); err != nil {
		conn.Close()
		return nil, err
	}
	bind := []byte{nfqnlCfgCmdBind, 0, 0, 0} // command, _pad, pf be16 (unused by BIND)
	if err := q.config(netlink.Attribute{Type: nfqaCfgCmd, Data: bind}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("netem: bind nfqueue %d: %w (%s)", num, err, bindHint(err, num))
	}
	params := make([]byte, 5)
	binary.BigEndian.PutUint32(params[0:4], 0xffff) // copy_range (ignored in META mode)
	params[4] = nfqnlCopyMeta
	if err := q.config(
		netlink.Attribute{Type: nfqaCfgParams, Data: params},
		netlink.Attribute{Type: nfqaCfgQueueMaxlen, Data: be32(queueMaxLen)},
		netlink.Attribute{Type: nfqaCfgMask, Data: be32(nfqaCfgFFailOpen)},
		netlink.Attribute{Type: nfqaCfgFlags, Data: be32(nfqaCfgFFailOpen)},
	); err != nil {
		conn.Close()
		return nil, fmt.Errorf("netem: configure nfqueue %d (copy mode, maxlen, fail-open): %w", num, err)
	}
	return q, nil
}

func bindHint(err error, num uint16) string {
	switch {
	case errors.Is(err, unix.EPERM):
		// The kernel says EPERM both for a queue bound by another
		// socket and for a missing capability.
		return fmt.Sprintf("is another process bound to queue %d in this network namespace? binding also needs CAP_NET_ADMIN", num)
	case errors.Is(err, unix.EBUSY):
		return fmt.Sprintf("queue %d is already bound", num)
	default:
		return "is nfnetlink_queue in the kernel? see /proc/net/netfilter/nfnetlink_queue"
	}
}

// setRcvBuf makes the receive buffer rcvBuf bytes, past net.core.rmem_max
// when we may (SO_RCVBUFFORCE needs CAP_NET_ADMIN).
func (q *nfq) setRcvBuf() error {
	rc, err := q.conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("netem: nfqueue socket: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf)
	}); err != nil {
		return fmt.Errorf("netem: nfqueue socket: %w", err)
	}
	if serr != nil {
		if err := q.conn.SetReadBuffer(rcvBuf); err != nil {
			return fmt.Errorf("netem: set nfqueue receive buffer: %w", err)
		}
	}
	return nil
}

// config sends one NFQNL_MSG_CONFIG for the queue and waits for its ack.
func (q *nfq) config(attrs ...netlink.Attribute) error {
	data, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return err
	}
	_, err = q.conn.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(nfnlSubsysQueue<<8 | nfqnlMsgConfig),
			Flags: netlink.Request | netlink.Acknowledge,
		},
		Data: append(q.nfgenmsg(), data...),
	})
	return err
}

// nfgenmsg is the nfnetlink header: family, version NFNETLINK_V0, and
// res_id (be16) carrying the queue number.
func (q *nfq) nfgenmsg() []byte {
	return []byte{unix.AF_UNSPEC, 0, byte(q.num >> 8), byte(q.num)}
}

// verdict tells the kernel what to do with packet id. It is safe to call
// while receive runs in another goroutine.
func (q *nfq) verdict(id uint32, accept bool) error {
	v := uint32(nfDrop)
	if accept {
		v = nfAccept
	}
	hdr := make([]byte, 8)
	binary.BigEndian.PutUint32(hdr[0:4], v)
	binary.BigEndian.PutUint32(hdr[4:8], id)
	data, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: nfqaVerdictHdr, Data: hdr}})
	if err != nil {
		return err
	}
	_, err = q.conn.Send(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(nfnlSubsysQueue<<8 | nfqnlMsgVerdict),
			Flags: netlink.Request,
		},
		Data: append(q.nfgenmsg(), data...),
	})
	return err
}

// receive reads queued packets and hands each packet id to fn, in the
// order the kernel queued them, until the socket's read deadline passes
// (then it returns nil) or the socket fails. Receive-buffer overruns
// (ENOBUFS) are logged and survived: with fail-open the kernel let those
// packets through undelayed.
func (q *nfq) receive(fn func(id uint32), logf func(string, ...any)) error {
	for {
		msgs, err := q.conn.Receive()
		if err != nil {
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				return nil
			case errors.Is(err, unix.ENOBUFS):
				logf("netem: nfqueue %d: receive buffer overrun (ENOBUFS): some packets passed undelayed; continuing", q.num)
				continue
			case isErrnoMessage(err):
				// A netlink error answering one of our verdicts (for
				// example a packet the kernel already let go); the
				// socket itself is fine.
				logf("netem: nfqueue %d: kernel rejected a verdict: %v", q.num, err)
				continue
			}
			return fmt.Errorf("netem: receive from nfqueue %d: %w", q.num, err)
		}
		for _, m := range msgs {
			if m.Header.Type != netlink.HeaderType(nfnlSubsysQueue<<8|nfqnlMsgPacket) {
				continue
			}
			id, ok := packetID(m.Data)
			if !ok {
				logf("netem: nfqueue %d: packet message without NFQA_PACKET_HDR", q.num)
				continue
			}
			fn(id)
		}
	}
}

// isErrnoMessage reports whether err came from a netlink error message
// (an errno the kernel sent back) rather than from the socket.
func isErrnoMessage(err error) bool {
	var oe *netlink.OpError
	if !errors.As(err, &oe) || oe.Op != "receive" {
		return false
	}
	// Socket failures are wrapped in *os.SyscallError; errno messages
	// are a bare errno.
	_, bare := oe.Err.(unix.Errno)
	return bare
}

// packetID extracts packet_id from an NFQNL_MSG_PACKET's NFQA_PACKET_HDR.
func packetID(data []byte) (uint32, bool) {
	if len(data) < 4 {
		return 0, false
	}
	ad, err := netlink.NewAttributeDecoder(data[4:]) // skip nfgenmsg
	if err != nil {
		return 0, false
	}
	for ad.Next() {
		if ad.Type() == nfqaPacketHdr {
			if b := ad.Bytes(); len(b) >= 4 {
				return binary.BigEndian.Uint32(b[0:4]), true
			}
		}
	}
	return 0, false
}

// close unbinds the queue and closes the socket. Closing alone would make
// the kernel drop the queue too; the explicit unbind says so cleanly.
func (q *nfq) close() error {
	_ = q.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	unbind := []byte{nfqnlCfgCmdUnbind, 0, 0, 0}
	uerr := q.config(netlink.Attribute{Type: nfqaCfgCmd, Data: unbind})
	cerr := q.conn.Close()
	if uerr != nil {
		return fmt.Errorf("netem: unbind nfqueue %d: %w", q.num, uerr)
	}
	return cerr
}

func be32(v uint32) []byte {
	return binary.BigEndian.AppendUint32(nil, v)
}
