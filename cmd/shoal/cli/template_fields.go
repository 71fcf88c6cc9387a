package cli

import (
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// templateValue is what an inspect template sees: m's JSON as Go values
// (jsonValue), with every field name of a message written as docker
// writes its fields: desired_state is DesiredState, node_id NodeID,
// spec.task.container.image Spec.Task.Container.Image. The keys of map
// fields (labels, env) are the user's and stay as they are.
func templateValue(m proto.Message) (any, error) {
	v, err := jsonValue(m)
	if err != nil {
		return nil, err
	}
	return dockerKeys(v, m.ProtoReflect().Descriptor()), nil
}

func dockerKeys(v any, md protoreflect.MessageDescriptor) any {
	obj, ok := v.(map[string]any)
	if !ok {
		return v // a well-known type written as a string
	}
	out := make(map[string]any, len(obj))
	for k, val := range obj {
		fd := md.Fields().ByName(protoreflect.Name(k))
		if fd == nil {
			fd = md.Fields().ByJSONName(k)
		}
		name := fieldName(k)
		if fd != nil {
			val = dockerKeysField(val, fd)
			if n, ok := dockerFieldNames[fd.FullName()]; ok {
				name = n
			}
		}
		out[name] = val
	}
	return out
}

func dockerKeysField(v any, fd protoreflect.FieldDescriptor) any {
	switch {
	case fd.IsMap():
		if fd.MapValue().Kind() != protoreflect.MessageKind {
			return v
		}
		if m, ok := v.(map[string]any); ok {
			out := make(map[string]any, len(m))
			for k, e := range m {
				out[k] = dockerKeys(e, fd.MapValue().Message())
			}
			return out
		}
	case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
		if l, ok := v.([]any); ok && fd.IsList() {
			out := make([]any, len(l))
			for i, e := range l {
				out[i] = dockerKeys(e, fd.Message())
			}
			return out
		}
		return dockerKeys(v, fd.Message())
	}
	return v
}

// dockerFieldNames are the fields docker names otherwise than their
// words: a service spec's update and rollback configs are docker's
// Spec.UpdateConfig and Spec.RollbackConfig.
var dockerFieldNames = map[protoreflect.FullName]string{
	"shoal.v1.ServiceSpec.update":   "UpdateConfig",
	"shoal.v1.ServiceSpec.rollback": "RollbackConfig",
}

// initialisms are the words docker's Go field names write in capitals.
var initialisms = map[string]string{
	"id": "ID", "ids": "IDs", "ip": "IP", "ips": "IPs", "vip": "VIP", "vips": "VIPs",
	"dns": "DNS", "ca": "CA", "tls": "TLS", "cpu": "CPU", "cpus": "CPUs", "url": "URL",
	"vni": "VNI", "ttl": "TTL", "pem": "PEM", "uid": "UID", "gid": "GID", "tcp": "TCP", "udp": "UDP", "http": "HTTP",
}

// fieldName turns a proto field name (snake_case) or JSON name
// (lowerCamel) into docker's CamelCase: node_id → NodeID.
func fieldName(k string) string {
	var b strings.Builder
	for _, w := range strings.Split(k, "_") {
		if w == "" {
			continue
		}
		if up, ok := initialisms[strings.ToLower(w)]; ok {
			b.WriteString(up)
			continue
		}
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	return b.String()
}
