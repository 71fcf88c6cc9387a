package image

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/shoal-run/shoal/tests/testimage"
)

// An image's HEALTHCHECK (and HEALTHCHECK NONE) comes back from the store
// as the built config holds it, whether the image was pulled, loaded from
// an OCI archive or from a docker archive, and after the store reopens.
func TestImageHealthcheck(t *testing.T) {
	if _, err := os.Stat(testimage.DefaultBusybox); err != nil {
		t.Skipf("needs busybox-static: %v", err)
	}
	reg := newTestRegistry(t)
	full := &testimage.Healthcheck{Test: []string{"CMD-SHELL", "wget -q -O- http://127.0.0.1/ || exit 1"},
		Interval: 2 * time.Second, Timeout: time.Second, StartPeriod: 3 * time.Second, StartInterval: 500 * time.Millisecond, Retries: 4}
	for _, tc := range []struct {
		name string
		in   *testimage.Healthcheck
		want *Healthcheck
	}{
		{"cmd-shell", full, &Healthcheck{Test: full.Test, Interval: 2 * time.Second, Timeout: time.Second,
			StartPeriod: 3 * time.Second, StartInterval: 500 * time.Millisecond, Retries: 4}},
		{"cmd", &testimage.Healthcheck{Test: []string{"CMD", "/whoami", "exit", "0"}}, &Healthcheck{Test: []string{"CMD", "/whoami", "exit", "0"}}},
		{"none", &testimage.Healthcheck{Test: []string{"NONE"}}, &Healthcheck{Test: []string{"NONE"}}},
		{"no-healthcheck", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := testimage.Build("", testimage.Options{Tag: "hc-" + tc.name, Healthcheck: tc.in})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			s := newStore(t, Options{Root: filepath.Join(dir, "store")})
			check := func(how string, img *Image) {
				t.Helper()
				if !reflect.DeepEqual(img.Config.Healthcheck, tc.want) {
					t.Errorf("%s: Healthcheck = %+v; want %+v", how, img.Config.Healthcheck, tc.want)
				}
			}
			ref := reg.push(t, "hc/"+tc.name+":1", b.Image)
			img, err := s.Pull(context.Background(), ref, nil)
			if err != nil {
				t.Fatal(err)
			}
			check("pulled", img)

			for _, write := range []struct {
				how string
				fn  func(string) error
			}{
				{"OCI archive", b.WriteOCITarball},
				{"docker archive", func(p string) error { return b.WriteDockerArchive(p, "hc-"+tc.name+":1") }},
			} {
				other := newStore(t, Options{Root: filepath.Join(dir, write.how)})
				p := filepath.Join(dir, write.how+".tar")
				if err := write.fn(p); err != nil {
					t.Fatal(err)
				}
				f, err := os.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				imgs, err := other.Load(context.Background(), f, nil)
				f.Close()
				if err != nil || len(imgs) != 1 {
					t.Fatalf("load the %s: %d images, %v", write.how, len(imgs), err)
				}
				check("loaded from the "+write.how, imgs[0])
			}

			reopened := reopen(t, s)
			img, err = reopened.Get(ref)
			if err != nil {
				t.Fatal(err)
			}
			check("after the store reopened", img)
		})
	}
}
