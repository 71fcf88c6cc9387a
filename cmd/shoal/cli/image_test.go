package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func TestSplitRepoTag(t *testing.T) {
	for _, tt := range []struct{ in, repo, tag string }{
		{"docker.io/library/nginx:1.27", "docker.io/library/nginx", "1.27"},
		{"127.0.0.1:5000/whoami:1", "127.0.0.1:5000/whoami", "1"},
		{"127.0.0.1:5000/whoami", "127.0.0.1:5000/whoami", "<none>"},
		{"r.example/app@sha256:" + strings.Repeat("a", 64), "r.example/app", "<none>"},
		{"127.0.0.1:5000/app@sha256:" + strings.Repeat("b", 64), "127.0.0.1:5000/app", "<none>"},
	} {
		if repo, tag := splitRepoTag(tt.in); repo != tt.repo || tag != tt.tag {
			t.Errorf("splitRepoTag(%q) = %q, %q; want %q, %q", tt.in, repo, tag, tt.repo, tt.tag)
		}
	}
}

func TestInspectOf(t *testing.T) {
	digest := "sha256:" + strings.Repeat("d", 64)
	created := time.Date(2024, 5, 1, 12, 30, 0, 5, time.UTC)
	for _, tt := range []struct {
		name string
		img  *shoalv1.LocalImage
		want string // the JSON
	}{
		{"pulled, named twice and by digest", &shoalv1.LocalImage{
			Id: "sha256:1", Digest: digest, Size: 42, CreatedAt: timestamppb.New(created),
			Names:  []string{"r.example/b:2", "r.example/a:1", "r.example/a@" + digest},
			Layers: []string{"sha256:l1", "sha256:l2"}, Os: "linux", Architecture: "arm64", Variant: "v8",
			Config: &shoalv1.LocalImageConfig{
				Entrypoint: []string{"/app"}, Cmd: []string{"serve"}, Env: []string{"A=1"}, WorkingDir: "/w", User: "app",
				Labels: map[string]string{"k": "v"}, ExposedPorts: []string{"53/udp", "80/tcp"}, StopSignal: "SIGQUIT",
			},
		}, `{"Id":"sha256:1","RepoTags":["r.example/a:1","r.example/b:2"],` +
			`"RepoDigests":["r.example/a@` + digest + `","r.example/b@` + digest + `"],"Created":"2024-05-01T12:30:00.000000005Z",` +
			`"Config":{"User":"app","ExposedPorts":{"53/udp":{},"80/tcp":{}},"Env":["A=1"],"Cmd":["serve"],"WorkingDir":"/w",` +
			`"Entrypoint":["/app"],"Labels":{"k":"v"},"StopSignal":"SIGQUIT"},"Architecture":"arm64","Variant":"v8","Os":"linux",` +
			`"Size":42,"RootFS":{"Type":"layers","Layers":["sha256:l1","sha256:l2"]}}`},
		// docker save archives have no manifest digest; docker prints
		// empty lists and nulls, not missing fields.
		{"loaded, unnamed, no config", &shoalv1.LocalImage{Id: "sha256:2", Os: "linux", Architecture: "amd64"},
			`{"Id":"sha256:2","RepoTags":[],"RepoDigests":[],"Created":"0001-01-01T00:00:00Z",` +
				`"Config":{"User":"","Env":null,"Cmd":null,"WorkingDir":"","Entrypoint":null,"Labels":null},` +
				`"Architecture":"amd64","Os":"linux","Size":0,"RootFS":{"Type":"layers","Layers":null}}`},
	} {
		b, err := json.Marshal(inspectOf(tt.img))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("%s: inspectOf =\n%s\nwant\n%s", tt.name, b, tt.want)
		}
	}
}
