package image

import (
	"slices"
	"strings"
	"testing"

	"github.com/shoal-run/shoal/internal/errdefs"
)

func TestTag(t *testing.T) {
	reg := newTestRegistry(t)
	s := newStore(t, Options{})
	a := mustPull(t, s, reg.push(t, "a:1", imageOf(t, nil, randomLayer(t))))
	b := mustPull(t, s, reg.push(t, "b:1", imageOf(t, nil, randomLayer(t))))
	hexA := strings.TrimPrefix(a.ID, "sha256:")

	for _, tt := range []struct {
		source, target string
		wantID         string
		wantNames      []string // of the image tagged
	}{
		{reg.ref("a:1"), "local/a", a.ID, []string{reg.ref("a:1"), "docker.io/local/a:latest"}},
		{hexA[:10], "example.com/team/a:v2", a.ID, []string{reg.ref("a:1"), "docker.io/local/a:latest", "example.com/team/a:v2"}},
		{"local/a:latest", "local/a:latest", a.ID, []string{reg.ref("a:1"), "docker.io/local/a:latest", "example.com/team/a:v2"}},
		// The name moves from a to b.
		{b.ID, "local/a", b.ID, []string{reg.ref("b:1"), "docker.io/local/a:latest"}},
	} {
		img, err := s.Tag(tt.source, tt.target)
		if err != nil {
			t.Fatalf("Tag(%q, %q): %v", tt.source, tt.target, err)
		}
		if img.ID != tt.wantID || !slices.Equal(img.Names, tt.wantNames) {
			t.Errorf("Tag(%q, %q) = %s %v; want %s %v", tt.source, tt.target, img.ID, img.Names, tt.wantID, tt.wantNames)
		}
		if got, err := s.Get(tt.target); err != nil || got.ID != tt.wantID {
			t.Errorf("after Tag(%q, %q): Get(%q) = %v, %v; want %s", tt.source, tt.target, tt.target, got, err, tt.wantID)
		}
	}
	if got, _ := s.Get(a.ID); !slices.Equal(got.Names, []string{reg.ref("a:1"), "example.com/team/a:v2"}) {
		t.Errorf("a's names after the move: %v", got.Names)
	}
	if got, err := reopen(t, s).Get("local/a"); err != nil || got.ID != b.ID {
		t.Errorf("after reopen, local/a = %v, %v; want %s", got, err, b.ID)
	}
}

func TestTagErrors(t *testing.T) {
	reg := newTestRegistry(t)
	s := newStore(t, Options{})
	img := mustPull(t, s, reg.push(t, "a:1", imageOf(t, nil, randomLayer(t))))
	for _, tt := range []struct {
		source, target string
		cat            error
		want           string
	}{
		{"nope", "x", errdefs.ErrNotFound, `image "nope" not found`},
		{"sha256:" + strings.Repeat("0", 64), "x", errdefs.ErrNotFound, "not found"},
		{img.ID, "x@sha256:" + strings.Repeat("a", 64), errdefs.ErrInvalid, "refusing to create a tag with a digest reference"},
		{img.ID, "Bad Tag", errdefs.ErrInvalid, `invalid image reference "Bad Tag"`},
		{img.ID, "", errdefs.ErrInvalid, "image reference is empty"},
		{"", "x", errdefs.ErrInvalid, "image reference is empty"},
	} {
		_, err := s.Tag(tt.source, tt.target)
		if !errdefs.Is(err, tt.cat) || err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Tag(%q, %q) = %v; want %v containing %q", tt.source, tt.target, err, tt.cat, tt.want)
		}
	}
	imgs, _ := s.List()
	if len(imgs) != 1 || !slices.Equal(imgs[0].Names, []string{reg.ref("a:1")}) {
		t.Errorf("refused tags changed the store: %+v", imgs)
	}
	if _, err := s.Get("x"); !errdefs.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get(x) after refused tags = %v; want not found", err)
	}
}
