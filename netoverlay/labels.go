package netoverlay

import (
	"encoding/base64"
	"fmt"

	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// LabelNetworks is the container label that carries what the overlay
// needs to plug a container in: its task (or attachment) ID, service and
// interfaces. It lives with the container, so a daemon restarted while
// no manager answers can plug its running containers in again and
// announce them.
const LabelNetworks = "shoal.networks"

// LabelAttachment names the attachment of a standalone container on an
// attachable network (shoal run --network), which the node gives back
// when the container is removed.
const LabelAttachment = "shoal.attachment.id"

// EncodeNetworks is the LabelNetworks value of t: only the fields the
// overlay reads.
func EncodeNetworks(t *shoalv1.Task) (string, error) {
	buf, err := proto.Marshal(&shoalv1.Task{Id: t.GetId(), ServiceId: t.GetServiceId(), ServiceName: t.GetServiceName(), Networks: t.GetNetworks()})
	if err != nil {
		return "", err
	}
	return base64.RawStdEncoding.EncodeToString(buf), nil
}

// DecodeNetworks reads a LabelNetworks value.
func DecodeNetworks(v string) (*shoalv1.Task, error) {
	buf, err := base64.RawStdEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("label %s: %v", LabelNetworks, err)
	}
	var t shoalv1.Task
	if err := proto.Unmarshal(buf, &t); err != nil {
		return nil, fmt.Errorf("label %s: %v", LabelNetworks, err)
	}
	if t.GetId() == "" || len(t.GetNetworks()) == 0 {
		return nil, fmt.Errorf("label %s: no task ID or no network", LabelNetworks)
	}
	return &t, nil
}
