package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// protoJSON renders m as protojson does with proto field names, except
// that 64-bit integers are JSON numbers. protojson quotes them ("slot":
// "1") for JavaScript's sake; shoal's output is read by jq and Go, which
// take them whole. Which values to unquote is read from m's descriptors,
// so a string that looks like a number (a service named "123") stays a
// string. With all, unset fields are rendered too, with zero values.
func protoJSON(m proto.Message, all bool) ([]byte, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: all}.Marshal(m)
	if err != nil {
		return nil, err
	}
	return unquoteMessage(b, m.ProtoReflect().Descriptor())
}

// unquoteMessage rewrites raw, the protojson of a message md, keeping
// its members' order.
func unquoteMessage(raw []byte, md protoreflect.MessageDescriptor) ([]byte, error) {
	switch md.FullName() {
	case "google.protobuf.Int64Value", "google.protobuf.UInt64Value":
		return unquoteInt(raw)
	}
	if md.FullName().Parent() == "google.protobuf" || isNull(raw) {
		// Timestamps, durations, Struct and Any have JSON forms of their own.
		return raw, nil
	}
	return rewriteObject(raw, func(key string, v []byte) ([]byte, error) {
		fd := md.Fields().ByName(protoreflect.Name(key))
		if fd == nil {
			fd = md.Fields().ByJSONName(key)
		}
		if fd == nil {
			return v, nil // an extension: left as it is
		}
		return unquoteField(v, fd)
	})
}

// unquoteField rewrites the value of field fd.
func unquoteField(raw []byte, fd protoreflect.FieldDescriptor) ([]byte, error) {
	switch {
	case isNull(raw):
		return raw, nil
	case fd.IsMap():
		// Map keys are JSON object keys, strings whatever their kind.
		return rewriteObject(raw, func(_ string, v []byte) ([]byte, error) { return unquoteValue(v, fd.MapValue()) })
	case fd.IsList():
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		buf.WriteByte('[')
		for i, e := range elems {
			v, err := unquoteValue(e, fd)
			if err != nil {
				return nil, err
			}
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.Write(v)
		}
		buf.WriteByte(']')
		return buf.Bytes(), nil
	}
	return unquoteValue(raw, fd)
}

// unquoteValue rewrites one value of fd's kind (an element of a list or
// a map's value, or a singular field).
func unquoteValue(raw []byte, fd protoreflect.FieldDescriptor) ([]byte, error) {
	switch fd.Kind() {
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return unquoteInt(raw)
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return unquoteMessage(raw, fd.Message())
	}
	return raw, nil
}

// unquoteInt turns "123" into 123.
func unquoteInt(raw []byte) ([]byte, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return raw, nil // already a number
	}
	if _, err := strconv.ParseInt(s, 10, 64); err != nil {
		if _, err := strconv.ParseUint(s, 10, 64); err != nil {
			return nil, fmt.Errorf("64-bit integer field is %s, not an integer", raw)
		}
	}
	return []byte(s), nil
}

func isNull(raw []byte) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// rewriteObject rebuilds the JSON object raw with each member's value
// passed through fn, in the original order.
func rewriteObject(raw []byte, fn func(key string, v []byte) ([]byte, error)) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("want a JSON object, got %.40s", raw)
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	for first := true; dec.More(); first = false {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out, err := fn(key, v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		k, err := json.Marshal(key)
		if err != nil {
			return nil, err
		}
		if !first {
			buf.WriteByte(',')
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(out)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
