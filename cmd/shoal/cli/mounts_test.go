package cli

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func TestParseMountFlags(t *testing.T) {
	vol, bind, tmpfs := shoalv1.MountType_MOUNT_TYPE_VOLUME, shoalv1.MountType_MOUNT_TYPE_BIND, shoalv1.MountType_MOUNT_TYPE_TMPFS
	for _, tc := range []struct {
		parse   func(string) (*shoalv1.Mount, error)
		in      string
		want    *shoalv1.Mount
		wantErr string
	}{
		{parseMount, "source=data,target=/var/lib/db", &shoalv1.Mount{Type: vol, Source: "data", Target: "/var/lib/db"}, ""},
		{parseMount, "type=bind,src=/srv,dst=/srv,readonly,bind-propagation=rslave", &shoalv1.Mount{Type: bind, Source: "/srv", Target: "/srv", ReadOnly: true, BindOptions: &shoalv1.BindOptions{Propagation: "rslave"}}, ""},
		{parseMount, "type=volume,target=/d,volume-nocopy,volume-label=a=b,volume-opt=type=tmpfs,volume-opt=device=tmpfs", &shoalv1.Mount{Type: vol, Target: "/d", VolumeOptions: &shoalv1.VolumeOptions{NoCopy: true, Labels: map[string]string{"a": "b"}, DriverConfig: &shoalv1.Driver{Options: map[string]string{"type": "tmpfs", "device": "tmpfs"}}}}, ""},
		{parseMount, "type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770", &shoalv1.Mount{Type: tmpfs, Target: "/t", TmpfsOptions: &shoalv1.TmpfsOptions{SizeBytes: 1 << 20, Mode: 0o1770}}, ""},
		{parseMount, "ro=false,target=/x", &shoalv1.Mount{Type: vol, Target: "/x"}, ""},
		{parseMount, "source=data", nil, "target is required"},
		{parseMount, "target=rel", nil, "absolute path"},
		{parseMount, "type=nfs,target=/x", nil, "invalid mount type"},
		{parseMount, "target=/x,bogus=1", nil, "unexpected key 'bogus'"},
		{parseMount, "target=/x,justakey", nil, "must be a key=value pair"},
		{parseMount, "type=bind,target=/x", nil, "source is required"},
		{parseMount, "type=bind,source=/a,target=/x,tmpfs-size=1m", nil, "cannot mix"},
		{parseMount, "type=tmpfs,source=a,target=/x", nil, "takes no source"},
		{parseMount, "type=tmpfs,target=/x,tmpfs-mode=999", nil, "octal"},
		{parseVolumeFlag, "/data", &shoalv1.Mount{Type: vol, Target: "/data"}, ""},
		{parseVolumeFlag, "db:/data", &shoalv1.Mount{Type: vol, Source: "db", Target: "/data"}, ""},
		{parseVolumeFlag, "/host:/data:ro", &shoalv1.Mount{Type: bind, Source: "/host", Target: "/data", ReadOnly: true}, ""},
		{parseVolumeFlag, "db:/data:nocopy", &shoalv1.Mount{Type: vol, Source: "db", Target: "/data", VolumeOptions: &shoalv1.VolumeOptions{NoCopy: true}}, ""},
		{parseVolumeFlag, "./rel:/data", nil, "absolute path"},
		{parseVolumeFlag, "db:rel", nil, "absolute path"},
		{parseVolumeFlag, "db:/data:bogus", nil, "unknown option"},
		{parseTmpfsFlag, "/run:size=64m,mode=1777", &shoalv1.Mount{Type: tmpfs, Target: "/run", TmpfsOptions: &shoalv1.TmpfsOptions{SizeBytes: 64 << 20, Mode: 0o1777}}, ""},
		{parseTmpfsFlag, "run", nil, "absolute path"},
		{parseTmpfsFlag, "/run:uid=1", nil, "unknown option"},
	} {
		got, err := tc.parse(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !proto.Equal(got, tc.want) {
			t.Errorf("%q:\n got %s\nwant %s", tc.in, prototext.Format(got), prototext.Format(tc.want))
		}
	}
}
