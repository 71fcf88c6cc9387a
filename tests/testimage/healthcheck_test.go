package testimage

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// Options.Healthcheck lands in the config's config.Healthcheck in docker's
// JSON shape (StartInterval too), and the image stays whole: its manifest
// names the new config, and its layers are still there.
func TestHealthcheckInConfig(t *testing.T) {
	plain := build(t, Options{Tag: "hc"})
	for _, h := range []*Healthcheck{
		{Test: []string{"CMD-SHELL", "wget -q -O- http://127.0.0.1/ || exit 1"}, Interval: 2 * time.Second,
			Timeout: time.Second, StartPeriod: 3 * time.Second, StartInterval: 500 * time.Millisecond, Retries: 4},
		{Test: []string{"NONE"}},
	} {
		b := build(t, Options{Tag: "hc", Healthcheck: h})
		if b.Digest == plain.Digest {
			t.Fatalf("the image with HEALTHCHECK %v has the plain image's digest", h.Test)
		}
		if err := validate.Image(b.Image); err != nil {
			t.Fatalf("HEALTHCHECK %v: the image is not whole: %v", h.Test, err)
		}
		raw, err := b.Image.RawConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Config struct {
				Healthcheck map[string]any
				Entrypoint  []string
			} `json:"config"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"Test": toAny(h.Test)}
		if h.Interval != 0 {
			want["Interval"], want["Timeout"], want["StartPeriod"] = float64(2e9), float64(1e9), float64(3e9)
			want["StartInterval"], want["Retries"] = float64(5e8), float64(4)
		}
		if !reflect.DeepEqual(doc.Config.Healthcheck, want) {
			t.Errorf("config.Healthcheck = %v; want %v", doc.Config.Healthcheck, want)
		}
		if !reflect.DeepEqual(doc.Config.Entrypoint, []string{"/whoami"}) {
			t.Errorf("the rest of the config was lost: entrypoint %v", doc.Config.Entrypoint)
		}
		if again := build(t, Options{Tag: "hc", Healthcheck: h}); again.Digest != b.Digest {
			t.Errorf("two builds with HEALTHCHECK %v: %s and %s", h.Test, b.Digest, again.Digest)
		}
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
