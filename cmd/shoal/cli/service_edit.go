package cli

import (
	"fmt"
	"slices"
	"strings"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// The list edits of `service update` (--publish-add/-rm,
// --network-add/-rm, --placement-pref-add/-rm), with docker's semantics:
// pure functions of the current spec and the flags.

// updatePorts removes the ports --publish-rm names and adds those of
// --publish-add. As docker does, a --publish-rm value is read like a
// --publish one (80, 80/udp, 8080:80, published=8080,target=80,mode=host)
// and removes every port with its target port, protocol and publish
// mode, whatever it is published on; an added port the service already
// publishes is not added twice.
func updatePorts(e *shoalv1.EndpointSpec, add, rm []string) error {
	drop, err := parsePortsFlag("--publish-rm", rm)
	if err != nil {
		return err
	}
	added, err := parsePortsFlag("--publish-add", add)
	if err != nil {
		return err
	}
	var out []*shoalv1.PortConfig
	have := map[string]bool{}
	for _, p := range e.GetPorts() {
		if slices.ContainsFunc(drop, func(d *shoalv1.PortConfig) bool { return sameTarget(p, d) }) {
			continue
		}
		out = append(out, p)
		have[portKey(p)] = true
	}
	for _, p := range added {
		if !have[portKey(p)] {
			out = append(out, p)
			have[portKey(p)] = true
		}
	}
	e.Ports = out
	return nil
}

// sameTarget is docker's match for --publish-rm: target port, protocol
// and publish mode, unset meaning tcp and ingress.
func sameTarget(a, b *shoalv1.PortConfig) bool {
	return a.GetTargetPort() == b.GetTargetPort() && protocolOf(a) == protocolOf(b) && modeOf(a) == modeOf(b)
}

func protocolOf(p *shoalv1.PortConfig) shoalv1.PortProtocol {
	if p.GetProtocol() == shoalv1.PortProtocol_PORT_PROTOCOL_UNSPECIFIED {
		return shoalv1.PortProtocol_PORT_PROTOCOL_TCP
	}
	return p.GetProtocol()
}

func modeOf(p *shoalv1.PortConfig) shoalv1.PublishMode {
	if p.GetPublishMode() == shoalv1.PublishMode_PUBLISH_MODE_UNSPECIFIED {
		return shoalv1.PublishMode_PUBLISH_MODE_INGRESS
	}
	return p.GetPublishMode()
}

// portKey identifies a published port: docker's published:target/protocol/mode.
func portKey(p *shoalv1.PortConfig) string {
	return fmt.Sprintf("%d:%d/%v/%v", p.GetPublishedPort(), p.GetTargetPort(), protocolOf(p), modeOf(p))
}

// updateNetworks detaches the networks --network-rm names and attaches
// those of --network-add. The server stores attachments by network ID
// while a user names networks by name, ID or ID prefix, so each is
// resolved first; as with docker, removing a network that exists but is
// not attached changes nothing, and adding one already attached is an
// error. Kept attachments keep their aliases.
func updateNetworks(nets []*shoalv1.NetworkAttachment, add, rm []string, resolve func(ref string) (objectRef, error)) ([]*shoalv1.NetworkAttachment, error) {
	var drop []objectRef
	for _, ref := range rm {
		n, err := resolve(ref)
		if err != nil {
			return nil, fmt.Errorf("--network-rm %s: %w", ref, err)
		}
		drop = append(drop, n)
	}
	matches := func(a *shoalv1.NetworkAttachment, n objectRef) bool {
		return a.GetTarget() == n.id || a.GetTarget() == n.name
	}
	var out []*shoalv1.NetworkAttachment
	for _, a := range nets {
		if !slices.ContainsFunc(drop, func(n objectRef) bool { return matches(a, n) }) {
			out = append(out, a)
		}
	}
	for _, ref := range add {
		n, err := resolve(ref)
		if err != nil {
			return nil, fmt.Errorf("--network-add %s: %w", ref, err)
		}
		if slices.ContainsFunc(out, func(a *shoalv1.NetworkAttachment) bool { return matches(a, n) }) {
			return nil, fmt.Errorf("--network-add %s: service is already attached to network %s", ref, n.name)
		}
		out = append(out, &shoalv1.NetworkAttachment{Target: n.id})
	}
	return out, nil
}

// parsePrefs reads placement preferences: spread=node.labels.<key>.
func parsePrefs(flag string, in []string) ([]*shoalv1.PlacementPreference, error) {
	var out []*shoalv1.PlacementPreference
	for _, s := range in {
		d, ok := strings.CutPrefix(s, "spread=")
		if !ok || d == "" {
			return nil, fmt.Errorf("%s %q: use spread=node.labels.<key>", flag, s)
		}
		out = append(out, &shoalv1.PlacementPreference{SpreadDescriptor: d})
	}
	return out, nil
}

// updatePrefs removes the preferences --placement-pref-rm names and
// appends those of --placement-pref-add, in order, as docker does.
func updatePrefs(p *shoalv1.Placement, add, rm []string) error {
	drop, err := parsePrefs("--placement-pref-rm", rm)
	if err != nil {
		return err
	}
	added, err := parsePrefs("--placement-pref-add", add)
	if err != nil {
		return err
	}
	var out []*shoalv1.PlacementPreference
	for _, pref := range p.GetPreferences() {
		if !slices.ContainsFunc(drop, func(d *shoalv1.PlacementPreference) bool {
			return d.GetSpreadDescriptor() == pref.GetSpreadDescriptor()
		}) {
			out = append(out, pref)
		}
	}
	p.Preferences = append(out, added...)
	return nil
}
