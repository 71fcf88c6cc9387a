package dockerapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/registry"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func (s *Server) imageList(w http.ResponseWriter, r *http.Request) error {
	fs, err := filters(r)
	if err != nil {
		return err
	}
	fs, refs := take(fs, "reference")
	if len(fs) > 0 {
		return fmt.Errorf("image filter %q is not supported by Shoal's Docker API; it takes reference: %w", fs[0].GetKey(), errdefs.ErrInvalid)
	}
	resp, err := s.cfg.Runtime.ListImages(r.Context(), &shoalv1.ListImagesRequest{})
	if err != nil {
		return err
	}
	out := []image.Summary{}
	for _, img := range resp.GetImages() {
		sum := image.Summary{
			ID: img.GetId(), Created: img.GetCreatedAt().AsTime().Unix(), Size: img.GetSize(), SharedSize: -1, Containers: -1,
			Labels: img.GetConfig().GetLabels(), RepoTags: []string{}, RepoDigests: []string{},
		}
		if sum.Labels == nil {
			sum.Labels = map[string]string{}
		}
		repos := map[string]bool{}
		for _, n := range img.GetNames() {
			if name, dgst, ok := strings.Cut(n, "@"); ok {
				// NAME[:TAG]@DIGEST, as a service pins its image: the tag
				// for people, the digest as pulled.
				repo := name
				if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
					repo = name[:i]
					sum.RepoTags = appendNew(sum.RepoTags, name)
				}
				repos[repo] = true
				sum.RepoDigests = appendNew(sum.RepoDigests, repo+"@"+dgst)
				continue
			}
			sum.RepoTags = appendNew(sum.RepoTags, n)
			repo := n
			if i := strings.LastIndexByte(n, ':'); i > strings.LastIndexByte(n, '/') {
				repo = n[:i]
			}
			if !repos[repo] && img.GetDigest() != "" {
				repos[repo] = true
				sum.RepoDigests = append(sum.RepoDigests, repo+"@"+img.GetDigest())
			}
		}
		if len(refs) > 0 && !matchesRef(sum.RepoTags, refs) {
			continue
		}
		out = append(out, sum)
	}
	return ok(w, out)
}

// familiar is a reference as Docker's CLI writes it: without
// docker.io/ and library/.
func familiar(ref string) string {
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref
	}
	return reference.FamiliarString(n)
}

func appendNew(list []string, s string) []string {
	s = familiar(s)
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// matchesRef is docker image ls's reference filter: a name, or a
// name:tag, as the tags are written.
func matchesRef(tags, refs []string) bool {
	for _, t := range tags {
		for _, ref := range refs {
			repo := t
			if i := strings.LastIndexByte(t, ':'); i > strings.LastIndexByte(t, '/') {
				repo = t[:i]
			}
			if t == ref || repo == ref {
				return true
			}
		}
	}
	return false
}

// credentials says whether a base64 X-Registry-Auth header carries any:
// the docker CLI sends "{}" (encoded) when it has none.
func credentials(header string) bool {
	if header == "" {
		return false
	}
	b, err := base64.URLEncoding.DecodeString(header)
	if err != nil {
		if b, err = base64.StdEncoding.DecodeString(header); err != nil {
			return true
		}
	}
	var a registry.AuthConfig
	if json.Unmarshal(b, &a) != nil {
		return true
	}
	return a != (registry.AuthConfig{})
}

// imageCreate is docker pull (fromImage): the pull's progress as
// Docker's JSON messages. Importing (fromSrc) is not implemented.
func (s *Server) imageCreate(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if q.Get("fromSrc") != "" {
		return fmt.Errorf("importing a root filesystem (docker import) is not implemented by Shoal: build an image elsewhere and `docker image load` it: %w", errNotImplemented)
	}
	ref := q.Get("fromImage")
	if ref == "" {
		return fmt.Errorf("fromImage is empty: name the image to pull: %w", errdefs.ErrInvalid)
	}
	if tag := q.Get("tag"); tag != "" {
		if strings.HasPrefix(tag, "sha256:") {
			ref += "@" + tag
		} else {
			ref += ":" + tag
		}
	}
	if p := q.Get("platform"); p != "" && p != "linux/amd64" && p != "linux" {
		return fmt.Errorf("platform %q: Shoal pulls the image for this node's platform: %w", p, errdefs.ErrInvalid)
	}
	if credentials(r.Header.Get(registry.AuthHeader)) {
		return fmt.Errorf("a pull with registry credentials is not implemented by Shoal's Docker API on a node: give a service the credentials with `docker service create --with-registry-auth`: %w", errNotImplemented)
	}
	stream, err := s.cfg.Runtime.PullImage(r.Context(), &shoalv1.PullImageRequest{Ref: ref})
	if err != nil {
		return err
	}
	// The first message (or the error) decides the status code.
	first, err := stream.Recv()
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	fl, _ := w.(http.Flusher)
	_ = enc.Encode(jsonstream.Message{Status: "Pulling from " + strings.Split(ref, ":")[0], ID: tagOf(ref)})
	last := map[string]string{}
	for m := first; m != nil; {
		switch {
		case m.GetImage() != nil:
			pulled := ref
			if m.GetRef() != "" {
				pulled = m.GetRef()
			}
			pulled = familiar(pulled)
			status := "Downloaded newer image for " + pulled
			if m.GetUpToDate() {
				status = "Image is up to date for " + pulled
			}
			_ = enc.Encode(jsonstream.Message{Status: "Digest: " + m.GetImage().GetDigest()})
			_ = enc.Encode(jsonstream.Message{Status: "Status: " + status})
		case m.GetLayer() != "":
			l := shortID(m.GetLayer())
			msg := jsonstream.Message{ID: l, Status: m.GetStatus()}
			if m.GetTotal() > 0 && m.GetCurrent() < m.GetTotal() {
				msg.Progress = &jsonstream.Progress{Current: m.GetCurrent(), Total: m.GetTotal()}
			} else if last[l] == m.GetStatus() {
				break
			}
			last[l] = m.GetStatus()
			_ = enc.Encode(msg)
		}
		if fl != nil {
			fl.Flush()
		}
		next, err := stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				msg := message(errFrom(err))
				_ = enc.Encode(jsonstream.Message{Error: &jsonstream.Error{Message: msg}})
			}
			return nil
		}
		m = next
	}
	return nil
}

func tagOf(ref string) string {
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref[i+1:]
	}
	return "latest"
}

func shortID(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

// imageLoad is docker load: the request's body is a docker-archive or
// OCI-layout tarball.
func (s *Server) imageLoad(w http.ResponseWriter, r *http.Request) error {
	stream, err := s.cfg.Runtime.LoadImage(r.Context())
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for {
		n, rerr := r.Body.Read(buf)
		if n > 0 {
			if serr := stream.Send(&shoalv1.LoadImageRequest{Chunk: append([]byte(nil), buf[:n]...)}); serr != nil {
				break // the answer says why
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read the image archive: %w", rerr)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for _, img := range resp.GetImages() {
		names := img.GetNames()
		if len(names) == 0 {
			_ = enc.Encode(jsonstream.Message{Stream: "Loaded image ID: " + img.GetId() + "\n"})
		}
		for _, n := range names {
			if !strings.Contains(n, "@") {
				_ = enc.Encode(jsonstream.Message{Stream: "Loaded image: " + familiar(n) + "\n"})
			}
		}
	}
	return nil
}

// distributionInspect pins an image to its registry's digest, which the
// docker CLI asks before service create and update (unless
// --no-resolve-image). Shoal does not read the manifest's platforms, so
// the client sets none.
func (s *Server) distributionInspect(w http.ResponseWriter, r *http.Request, name string) error {
	resp, err := s.cfg.Control.ResolveImage(r.Context(), &shoalv1.ResolveImageRequest{Image: name, RegistryAuth: r.Header.Get(registry.AuthHeader)})
	if err != nil {
		return err
	}
	d, err := digest.Parse(resp.GetDigest())
	if err != nil {
		return fmt.Errorf("the registry gave digest %q for %s: %w", resp.GetDigest(), name, errdefs.ErrUnavailable)
	}
	return ok(w, registry.DistributionInspect{Descriptor: ocispec.Descriptor{Digest: d}, Platforms: []ocispec.Platform{}})
}
