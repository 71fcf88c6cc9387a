package cli

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// kitchenSink is a message with every shape a 64-bit integer can take:
// singular, repeated, a map's value and key, nested, and the wrapper.
func kitchenSink(t *testing.T) protoreflect.MessageDescriptor {
	t.Helper()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	typ := func(k descriptorpb.FieldDescriptorProto_Type) *descriptorpb.FieldDescriptorProto_Type {
		return k.Enum()
	}
	field := func(name string, num int32, label *descriptorpb.FieldDescriptorProto_Label, k descriptorpb.FieldDescriptorProto_Type, msg string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(num), Label: label, Type: typ(k), JsonName: proto.String(name)}
		if msg != "" {
			f.TypeName = proto.String(msg)
		}
		return f
	}
	entry := func(name string, key, val descriptorpb.FieldDescriptorProto_Type) *descriptorpb.DescriptorProto {
		return &descriptorpb.DescriptorProto{Name: proto.String(name), Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
			Field: []*descriptorpb.FieldDescriptorProto{field("key", 1, opt, key, ""), field("value", 2, opt, val, "")}}
	}
	T := descriptorpb.FieldDescriptorProto_TYPE_INT64
	fd := &descriptorpb.FileDescriptorProto{
		Name: proto.String("sink.proto"), Package: proto.String("sink"), Syntax: proto.String("proto3"),
		Dependency: []string{"google/protobuf/wrappers.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("Sink"),
			Field: []*descriptorpb.FieldDescriptorProto{
				field("name", 1, opt, descriptorpb.FieldDescriptorProto_TYPE_STRING, ""),
				field("i64", 2, opt, T, ""),
				field("u64", 3, opt, descriptorpb.FieldDescriptorProto_TYPE_UINT64, ""),
				field("s64", 4, opt, descriptorpb.FieldDescriptorProto_TYPE_SINT64, ""),
				field("f64", 5, opt, descriptorpb.FieldDescriptorProto_TYPE_FIXED64, ""),
				field("i32", 6, opt, descriptorpb.FieldDescriptorProto_TYPE_INT32, ""),
				field("list", 7, rep, T, ""),
				field("names", 8, rep, descriptorpb.FieldDescriptorProto_TYPE_STRING, ""),
				field("by_name", 9, rep, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".sink.Sink.ByNameEntry"),
				field("by_num", 10, rep, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".sink.Sink.ByNumEntry"),
				field("child", 11, opt, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".sink.Sink"),
				field("children", 12, rep, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".sink.Sink"),
				field("wrapped", 13, opt, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".google.protobuf.Int64Value"),
			},
			NestedType: []*descriptorpb.DescriptorProto{entry("ByNameEntry", descriptorpb.FieldDescriptorProto_TYPE_STRING, T),
				entry("ByNumEntry", T, descriptorpb.FieldDescriptorProto_TYPE_STRING)},
		}},
	}
	f, err := protodesc.NewFile(fd, protoRegistry{})
	if err != nil {
		t.Fatal(err)
	}
	return f.Messages().Get(0)
}

// protoRegistry resolves the wrapper import from the linked-in types.
type protoRegistry struct{}

func (protoRegistry) FindFileByPath(p string) (protoreflect.FileDescriptor, error) {
	return wrapperspb.File_google_protobuf_wrappers_proto, nil
}
func (protoRegistry) FindDescriptorByName(n protoreflect.FullName) (protoreflect.Descriptor, error) {
	return wrapperspb.File_google_protobuf_wrappers_proto.Messages().ByName(n.Name()), nil
}

func decodeNumbers(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}

func TestProtoJSONNumbers(t *testing.T) {
	md := kitchenSink(t)
	sink := func(text string) proto.Message {
		m := dynamicpb.NewMessage(md)
		if err := protojson.Unmarshal([]byte(text), m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	n := func(s string) json.Number { return json.Number(s) }
	for _, tc := range []struct {
		name string
		msg  proto.Message
		want any
	}{
		{"numeric-looking strings stay strings", sink(`{"name": "123", "names": ["1", "x"], "i64": "-9223372036854775808"}`),
			map[string]any{"name": "123", "names": []any{"1", "x"}, "i64": n("-9223372036854775808")}},
		{"every 64-bit kind", sink(`{"u64": "18446744073709551615", "s64": "-5", "f64": "7", "i32": 3}`),
			map[string]any{"u64": n("18446744073709551615"), "s64": n("-5"), "f64": n("7"), "i32": n("3")}},
		{"lists and map values and keys", sink(`{"list": ["1", "-2"], "by_name": {"a": "10", "123": "11"}, "by_num": {"42": "42"}}`),
			map[string]any{"list": []any{n("1"), n("-2")}, "by_name": map[string]any{"a": n("10"), "123": n("11")}, "by_num": map[string]any{"42": "42"}}},
		{"nested and wrapped", sink(`{"child": {"name": "7", "i64": "8", "child": {"u64": "9"}}, "children": [{"i64": "1"}, {"name": "2"}], "wrapped": "12"}`),
			map[string]any{"child": map[string]any{"name": "7", "i64": n("8"), "child": map[string]any{"u64": n("9")}},
				"children": []any{map[string]any{"i64": n("1")}, map[string]any{"name": "2"}}, "wrapped": n("12")}},
		{"a shoal service", &shoalv1.Service{Id: "s1", Meta: &shoalv1.Meta{Version: 31, CreatedAt: timestamppb.New(time.Unix(0, 0).UTC())},
			Spec: &shoalv1.ServiceSpec{Name: "123", Labels: map[string]string{"n": "42"},
				Mode: &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: 3}},
				Task: &shoalv1.TaskSpec{Restart: &shoalv1.RestartPolicy{MaxAttempts: 2, Delay: durationpb.New(2 * time.Second)}}}},
			map[string]any{"id": "s1", "meta": map[string]any{"version": n("31"), "created_at": "1970-01-01T00:00:00Z"},
				"spec": map[string]any{"name": "123", "labels": map[string]any{"n": "42"}, "replicated": map[string]any{"replicas": n("3")},
					"task": map[string]any{"restart": map[string]any{"max_attempts": n("2"), "delay": "2s"}}}}},
		{"a shoal task", &shoalv1.Task{Id: "t1", Slot: 1, ServiceName: "9"},
			map[string]any{"id": "t1", "slot": n("1"), "service_name": "9"}},
	} {
		b, err := protoJSON(tc.msg, false)
		if err != nil {
			t.Errorf("%s: protoJSON: %v", tc.name, err)
			continue
		}
		if got := decodeNumbers(t, b); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: protoJSON = %s; want %v", tc.name, b, tc.want)
		}
		// It is still the message's protojson: it reads back the same.
		back := tc.msg.ProtoReflect().New().Interface()
		if err := protojson.Unmarshal(b, back); err != nil || !proto.Equal(back, tc.msg) {
			t.Errorf("%s: %s reads back as %v, %v; want %v", tc.name, b, back, err, tc.msg)
		}
	}
}

// The fields keep protojson's order (the message's field order).
func TestProtoJSONKeepsOrder(t *testing.T) {
	b, err := protoJSON(&shoalv1.Task{Id: "t1", Slot: 2, NodeId: "n1", ServiceName: "web"}, false)
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"t1","slot":2,"node_id":"n1","service_name":"web"}`; compact.String() != want {
		t.Errorf("protoJSON = %s; want %s", compact.String(), want)
	}
}

// With all, unset fields appear with zero values, numbers as numbers.
func TestProtoJSONAll(t *testing.T) {
	b, err := protoJSON(&shoalv1.Task{Id: "t1"}, true)
	if err != nil {
		t.Fatal(err)
	}
	got := decodeNumbers(t, b).(map[string]any)
	if got["slot"] != json.Number("0") || got["service_name"] != "" || got["status"] != nil {
		t.Errorf("protoJSON(all) = %s; want slot 0, service_name \"\" and status null", b)
	}
}
