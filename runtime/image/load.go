package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// loadJobs is how many layers of one image are unpacked at once from an
// archive (the disk, not the network, is the limit).
const loadJobs = 2

// maxJSON bounds the manifests and configs read from an archive.
const maxJSON = 32 << 20

// Annotations naming an image in an OCI layout.
const (
	annotationRefName       = "org.opencontainers.image.ref.name"
	annotationContainerdRef = "io.containerd.image.name"
)

// Load stores the images of a docker-archive (`docker save`) or OCI-layout
// tarball, possibly compressed, telling the two apart by content
// (manifest.json, or oci-layout and index.json). Images are named by the
// archive's RepoTags, or by the io.containerd.image.name or a full
// reference in the org.opencontainers.image.ref.name annotation (a bare
// tag there names no image). An OCI index is resolved to the store's
// platform. Every layer is checked against the config's diffIDs, and OCI
// blobs against their digests. The archive is checked whole before any
// image is stored; if storing one fails, the images stored before it are
// returned with the error.
func (s *Store) Load(ctx context.Context, r io.Reader, progress func(Progress)) ([]*Image, error) {
	a, err := spoolArchive(ctx, r, s.path(tmpDir), newReporter("", progress), newBudget(s.maxImageSize, "the archive"))
	if err != nil {
		return nil, err
	}
	defer a.Close()
	var items []loadItem
	switch {
	case a.has("manifest.json"):
		items, err = dockerArchiveItems(a)
	case a.has("index.json"):
		items, err = ociLayoutItems(a, s.platform)
	default:
		return nil, fmt.Errorf("not an image archive: it has neither manifest.json (docker save) nor index.json (OCI image layout): %w", errdefs.ErrInvalid)
	}
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("the archive holds no images: %w", errdefs.ErrInvalid)
	}
	var out []*Image
	at := map[string]int{}
	for _, it := range items {
		img, err := s.ingest(ctx, it.rec, it.sources, it.names, it.blobs, loadJobs, newReporter(it.label, progress))
		if err != nil {
			return out, fmt.Errorf("loading %s: %w", it.label, err)
		}
		if i, ok := at[img.ID]; ok {
			out[i] = img // the same image under more names
			continue
		}
		at[img.ID] = len(out)
		out = append(out, img)
	}
	return out, nil
}

// loadItem is one image found in an archive, ready to be ingested.
type loadItem struct {
	label   string // for progress and errors
	rec     *imageRecord
	sources []layerSource
	names   []string
	blobs   map[string][]byte
}

func (a *archive) layerSource(member, diffID, digest string, size int64) layerSource {
	label := digest
	if label == "" {
		label = diffID
	}
	return layerSource{
		diffID: diffID,
		digest: digest,
		size:   size,
		label:  label,
		status: StatusExtracting,
		origin: "the archive",
		open: func() (io.ReadCloser, error) {
			r, err := a.open(member)
			if err != nil {
				return nil, err
			}
			return io.NopCloser(r), nil
		},
		classify: func(err error) error { return fmt.Errorf("reading the archive: %w", err) },
	}
}

// dockerArchiveItems reads a `docker save` archive's manifest.json.
func dockerArchiveItems(a *archive) ([]loadItem, error) {
	raw, err := a.readAll("manifest.json", maxJSON)
	if err != nil {
		return nil, err
	}
	var entries []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("the archive's manifest.json: %v: %w", err, errdefs.ErrInvalid)
	}
	var items []loadItem
	for i, e := range entries {
		label := fmt.Sprintf("image %d of the archive", i+1)
		if len(e.RepoTags) > 0 {
			label = e.RepoTags[0]
		}
		rawConfig, err := a.readAll(e.Config, maxJSON)
		if err != nil {
			return nil, fmt.Errorf("%s: config: %w", label, err)
		}
		id := sha256Digest(rawConfig)
		if d := digestFromPath(e.Config); d != "" && d != id {
			return nil, fmt.Errorf("%s: config %s has digest %s: %w", label, e.Config, id, errdefs.ErrInvalid)
		}
		cf, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
		if err != nil {
			return nil, fmt.Errorf("%s: config: %v: %w", label, err, errdefs.ErrInvalid)
		}
		if len(cf.RootFS.DiffIDs) != len(e.Layers) {
			return nil, fmt.Errorf("%s: manifest.json lists %d layers but the config has %d diffIDs: %w", label, len(e.Layers), len(cf.RootFS.DiffIDs), errdefs.ErrInvalid)
		}
		it := loadItem{label: label, rec: newRecord(id, "", cf, rawConfig), blobs: map[string][]byte{id: rawConfig}}
		for _, t := range e.RepoTags {
			n, err := NormalizeRef(t)
			if err != nil {
				return nil, fmt.Errorf("%s: RepoTags: %w", label, err)
			}
			it.names = append(it.names, n)
		}
		for j, l := range e.Layers {
			if _, err := a.resolve(l); err != nil {
				return nil, fmt.Errorf("%s: layer %d: %w", label, j+1, err)
			}
			// Only content-addressed paths say what the blob's digest is.
			it.sources = append(it.sources, a.layerSource(l, cf.RootFS.DiffIDs[j].String(), digestFromPath(l), -1))
		}
		items = append(items, it)
	}
	return items, nil
}

// digestFromPath returns the digest a content-addressed archive path
// (blobs/sha256/<hex>) names, or "".
func digestFromPath(p string) string {
	hex, ok := strings.CutPrefix(memberName(p), "blobs/sha256/")
	if !ok || len(hex) != 64 || !isHex(hex) {
		return ""
	}
	return "sha256:" + hex
}

// ociLayoutItems reads an OCI image layout's index.json.
func ociLayoutItems(a *archive, platform v1.Platform) ([]loadItem, error) {
	if a.has("oci-layout") {
		raw, err := a.readAll("oci-layout", maxJSON)
		if err != nil {
			return nil, err
		}
		var l struct {
			Version string `json:"imageLayoutVersion"`
		}
		if err := json.Unmarshal(raw, &l); err != nil || l.Version == "" {
			return nil, fmt.Errorf("the archive's oci-layout file is not valid: %w", errdefs.ErrInvalid)
		}
	}
	raw, err := a.readAll("index.json", maxJSON)
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("the archive's index.json: %v: %w", err, errdefs.ErrInvalid)
	}
	var items []loadItem
	for i, d := range idx.Manifests {
		names, err := annotatedNames(d.Annotations)
		if err != nil {
			return nil, fmt.Errorf("index.json entry %d: %w", i+1, err)
		}
		label := d.Digest.String()
		if len(names) > 0 {
			label = names[0]
		}
		desc := d
		for depth := 0; desc.MediaType.IsIndex(); depth++ {
			if depth > 4 {
				return nil, fmt.Errorf("%s: indexes nested too deeply: %w", label, errdefs.ErrInvalid)
			}
			rawIdx, err := a.blob(desc)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", label, err)
			}
			sub, err := v1.ParseIndexManifest(bytes.NewReader(rawIdx))
			if err != nil {
				return nil, fmt.Errorf("%s: index %s: %v: %w", label, desc.Digest, err, errdefs.ErrInvalid)
			}
			if desc, err = selectManifest(sub, platform, label); err != nil {
				return nil, err
			}
		}
		if !desc.MediaType.IsImage() {
			continue // signatures, attestations and other artifacts
		}
		it, err := ociImageItem(a, desc, label, names)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, nil
}

func ociImageItem(a *archive, desc v1.Descriptor, label string, names []string) (loadItem, error) {
	rawManifest, err := a.blob(desc)
	if err != nil {
		return loadItem{}, fmt.Errorf("%s: %w", label, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return loadItem{}, fmt.Errorf("%s: manifest: %v: %w", label, err, errdefs.ErrInvalid)
	}
	if !m.Config.MediaType.IsConfig() {
		return loadItem{}, fmt.Errorf("%s is not a container image (its config is a %s): %w", label, m.Config.MediaType, errdefs.ErrInvalid)
	}
	rawConfig, err := a.blob(m.Config)
	if err != nil {
		return loadItem{}, fmt.Errorf("%s: config: %w", label, err)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return loadItem{}, fmt.Errorf("%s: config: %v: %w", label, err, errdefs.ErrInvalid)
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return loadItem{}, fmt.Errorf("%s: manifest has %d layers but the config has %d diffIDs: %w", label, len(m.Layers), len(cf.RootFS.DiffIDs), errdefs.ErrInvalid)
	}
	rec := newRecord(m.Config.Digest.String(), desc.Digest.String(), cf, rawConfig)
	it := loadItem{label: label, rec: rec, names: names, blobs: map[string][]byte{rec.ID: rawConfig, rec.Digest: rawManifest}}
	for i, l := range m.Layers {
		if !l.MediaType.IsLayer() {
			return loadItem{}, fmt.Errorf("%s: layer %s has media type %s, which is not a filesystem layer: %w", label, l.Digest, l.MediaType, errdefs.ErrInvalid)
		}
		p, err := blobPath(l)
		if err != nil {
			return loadItem{}, fmt.Errorf("%s: %w", label, err)
		}
		if _, err := a.resolve(p); err != nil {
			return loadItem{}, fmt.Errorf("%s: layer %s: %w", label, l.Digest, err)
		}
		it.sources = append(it.sources, a.layerSource(p, cf.RootFS.DiffIDs[i].String(), l.Digest.String(), l.Size))
	}
	return it, nil
}

func blobPath(d v1.Descriptor) (string, error) {
	if d.Digest.Algorithm != "sha256" || len(d.Digest.Hex) != 64 || !isHex(d.Digest.Hex) {
		return "", fmt.Errorf("unsupported digest %q: %w", d.Digest, errdefs.ErrInvalid)
	}
	return "blobs/sha256/" + d.Digest.Hex, nil
}

// blob reads a small blob of an OCI layout and checks it against d.
func (a *archive) blob(d v1.Descriptor) ([]byte, error) {
	p, err := blobPath(d)
	if err != nil {
		return nil, err
	}
	b, err := a.readAll(p, maxJSON)
	if err != nil {
		return nil, err
	}
	if got := sha256Digest(b); got != d.Digest.String() || int64(len(b)) != d.Size {
		return nil, fmt.Errorf("blob %s in the archive has digest %s and %d bytes, not %d: the archive is corrupt: %w", d.Digest, got, len(b), d.Size, errdefs.ErrInvalid)
	}
	return b, nil
}

// annotatedNames returns the names an OCI index entry gives its image.
func annotatedNames(ann map[string]string) ([]string, error) {
	n := ann[annotationContainerdRef]
	if n == "" {
		if r := ann[annotationRefName]; strings.ContainsAny(r, "/:@") {
			n = r
		}
	}
	if n == "" {
		return nil, nil
	}
	norm, err := NormalizeRef(n)
	if err != nil {
		return nil, err
	}
	return []string{norm}, nil
}
