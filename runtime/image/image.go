package image

import (
	"encoding/json"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Image is a stored image.
type Image struct {
	ID       string    // config digest "sha256:..."
	Digest   string    // manifest digest; empty when loaded from a docker-archive, which has none
	Names    []string  // normalized references that point at it, sorted
	Config   Config    // what a container of it runs
	Layers   []string  // diffIDs, lowest first
	Size     int64     // unpacked bytes of its layers
	Created  time.Time // when it was built
	Platform string    // "os/arch[/variant]" from its config
}

// Config is the part of an image's config a container runtime needs.
type Config struct {
	Entrypoint   []string
	Cmd          []string
	Env          []string
	WorkingDir   string
	User         string
	StopSignal   string
	Labels       map[string]string
	ExposedPorts []string     // "80/tcp", sorted
	Healthcheck  *Healthcheck // nil when the image defines none
	Volumes      []string     // VOLUME paths, sorted
}

// Healthcheck is an image's HEALTHCHECK, in docker's JSON shape (the
// image config's config.Healthcheck; durations in nanoseconds). Zero
// durations and retries mean docker's defaults.
type Healthcheck struct {
	// Test is ["NONE"] (checks disabled), ["CMD", args...] or
	// ["CMD-SHELL", command].
	Test          []string      `json:"Test,omitempty"`
	Interval      time.Duration `json:"Interval,omitempty"`
	Timeout       time.Duration `json:"Timeout,omitempty"`
	StartPeriod   time.Duration `json:"StartPeriod,omitempty"`
	StartInterval time.Duration `json:"StartInterval,omitempty"`
	Retries       int           `json:"Retries,omitempty"`
}

// imageHealthcheck reads config.Healthcheck from an image's raw config
// (go-containerregistry's ConfigFile has no StartInterval): nil when the
// image has none. Negative values, which docker build refuses, count as
// unset.
func imageHealthcheck(raw []byte) *Healthcheck {
	var doc struct {
		Config struct {
			Healthcheck *Healthcheck `json:"Healthcheck"`
		} `json:"config"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil
	}
	h := doc.Config.Healthcheck
	if h == nil || len(h.Test) == 0 {
		return nil
	}
	for _, d := range []*time.Duration{&h.Interval, &h.Timeout, &h.StartPeriod, &h.StartInterval} {
		*d = max(*d, 0)
	}
	h.Retries = max(h.Retries, 0)
	return h
}

// imageRecord is an image as persisted; names live in the state's name
// table, so records never change once written.
type imageRecord struct {
	ID       string    `json:"id"`
	Digest   string    `json:"digest,omitempty"`
	Config   Config    `json:"config"`
	Layers   []string  `json:"layers"`
	Size     int64     `json:"size"`
	Created  time.Time `json:"created"`
	Platform string    `json:"platform,omitempty"`
}

// newRecord makes the record of the image whose config is raw, parsed as
// cf.
func newRecord(id, digest string, cf *v1.ConfigFile, raw []byte) *imageRecord {
	c := cf.Config
	cfg := Config{
		Entrypoint: c.Entrypoint,
		Cmd:        c.Cmd,
		Env:        c.Env,
		WorkingDir: c.WorkingDir,
		User:       c.User,
		StopSignal: c.StopSignal,
		Labels:     c.Labels,
	}
	for p := range c.ExposedPorts {
		cfg.ExposedPorts = append(cfg.ExposedPorts, p)
	}
	sort.Strings(cfg.ExposedPorts)
	for p := range c.Volumes {
		cfg.Volumes = append(cfg.Volumes, p)
	}
	sort.Strings(cfg.Volumes)
	cfg.Healthcheck = imageHealthcheck(raw)
	rec := &imageRecord{ID: id, Digest: digest, Config: cfg, Created: cf.Created.Time}
	for _, d := range cf.RootFS.DiffIDs {
		rec.Layers = append(rec.Layers, d.String())
	}
	if cf.OS != "" {
		rec.Platform = platformString(v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant})
	}
	return rec
}

// image returns a copy of rec for a caller, with its names.
func (rec *imageRecord) image(names []string) *Image {
	img := &Image{
		ID:       rec.ID,
		Digest:   rec.Digest,
		Names:    append([]string(nil), names...),
		Config:   rec.Config,
		Layers:   append([]string(nil), rec.Layers...),
		Size:     rec.Size,
		Created:  rec.Created,
		Platform: rec.Platform,
	}
	c := &img.Config
	c.Entrypoint = append([]string(nil), c.Entrypoint...)
	c.Cmd = append([]string(nil), c.Cmd...)
	c.Env = append([]string(nil), c.Env...)
	c.ExposedPorts = append([]string(nil), c.ExposedPorts...)
	c.Volumes = append([]string(nil), c.Volumes...)
	if c.Labels != nil {
		l := make(map[string]string, len(c.Labels))
		for k, v := range c.Labels {
			l[k] = v
		}
		c.Labels = l
	}
	if c.Healthcheck != nil {
		h := *c.Healthcheck
		h.Test = append([]string(nil), h.Test...)
		c.Healthcheck = &h
	}
	sort.Strings(img.Names)
	return img
}
