package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Manage this node's images"}
	cmd.AddCommand(newImagePullCmd(g), newImageLoadCmd(g), newImageLsCmd(g), newImageRmCmd(g), newImagePruneCmd(g),
		newImageTagCmd(g), newImageInspectCmd(g))
	return cmd
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[7:19]
	}
	return d
}

// pull pulls ref, printing a line each time a layer changes state and
// docker's status line at the end; it returns the normalized reference.
func (g *globals) pull(ctx context.Context, rc shoalv1.RuntimeServiceClient, ref string, out io.Writer) (string, error) {
	stream, err := rc.PullImage(ctx, &shoalv1.PullImageRequest{Ref: ref})
	if err != nil {
		return "", err
	}
	last := map[string]string{}
	pulled := ref
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return pulled, nil
		}
		if err != nil {
			return "", err
		}
		if img := m.GetImage(); img != nil {
			if m.GetRef() != "" {
				pulled = m.GetRef()
			}
			status := "Downloaded newer image for"
			if m.GetUpToDate() {
				status = "Image is up to date for"
			}
			fmt.Fprintf(out, "Digest: %s\nStatus: %s %s\n", img.GetDigest(), status, pulled)
			continue
		}
		if l := m.GetLayer(); l != "" && last[l] != m.GetStatus() {
			last[l] = m.GetStatus()
			fmt.Fprintf(out, "%s: %s\n", shortDigest(l), m.GetStatus())
		}
	}
}

func newImagePullCmd(g *globals) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "pull REF",
		Short: "Pull an image from a registry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rc, done, err := g.runtimeClient()
			if err != nil {
				return err
			}
			defer done()
			out := g.out
			if quiet {
				out = io.Discard
			}
			ref, err := g.pull(cmd.Context(), rc, args[0], out)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.out, ref)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the normalized reference")
	return cmd
}

func newImageLoadCmd(g *globals) *cobra.Command {
	var input string
	cmd := &cobra.Command{
		Use:   "load -i FILE",
		Short: "Load images from a docker-archive or OCI-layout tarball",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r io.Reader = os.Stdin
			if input != "" {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			rc, done, err := g.runtimeClient()
			if err != nil {
				return err
			}
			defer done()
			stream, err := rc.LoadImage(cmd.Context())
			if err != nil {
				return err
			}
			buf := make([]byte, 1<<20)
			for {
				n, err := r.Read(buf)
				if n > 0 {
					if serr := stream.Send(&shoalv1.LoadImageRequest{Chunk: append([]byte(nil), buf[:n]...)}); serr != nil {
						break // the server's answer says why
					}
				}
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return err
				}
			}
			resp, err := stream.CloseAndRecv()
			if err != nil {
				return err
			}
			for _, img := range resp.GetImages() {
				if len(img.GetNames()) == 0 {
					fmt.Fprintf(g.out, "Loaded image ID: %s\n", img.GetId())
				}
				for _, n := range img.GetNames() {
					fmt.Fprintf(g.out, "Loaded image: %s\n", n)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "tarball to read (default: standard input)")
	return cmd
}

func newImageLsCmd(g *globals) *cobra.Command {
	f := &listFlags{}
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List this node's images",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			rc, done, err := g.runtimeClient()
			if err != nil {
				return err
			}
			defer done()
			resp, err := rc.ListImages(cmd.Context(), &shoalv1.ListImagesRequest{})
			if err != nil {
				return err
			}
			imgs := resp.GetImages()
			switch {
			case f.quiet:
				return printIDs(g.out, imgs, func(i *shoalv1.LocalImage) string { return shortDigest(i.GetId()) })
			case f.format == "json":
				return writeJSON(g.out, imgs)
			}
			var rows []imageRow
			for _, i := range imgs {
				names := i.GetNames()
				if len(names) == 0 {
					names = []string{"<none>:<none>"}
				}
				for _, n := range names {
					rows = append(rows, imageRow{i, n})
				}
			}
			return printRows(g.out, f.format, "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}", imageColumns(time.Now()), rows)
		},
	}
	f.register(cmd.Flags(), "print IDs only")
	return cmd
}

// imageRow is a line of image ls: an image under one of its names.
type imageRow struct {
	img  *shoalv1.LocalImage
	name string
}

// imageColumns are image ls's template fields, docker's.
func imageColumns(now time.Time) []column[imageRow] {
	return []column[imageRow]{
		{"Repository", "REPOSITORY", func(r imageRow) any { repo, _ := splitRepoTag(r.name); return repo }},
		{"Tag", "TAG", func(r imageRow) any { _, tag := splitRepoTag(r.name); return tag }},
		{"ID", "IMAGE ID", func(r imageRow) any { return shortDigest(r.img.GetId()) }},
		{"Digest", "DIGEST", func(r imageRow) any { return r.img.GetDigest() }},
		{"CreatedSince", "CREATED", func(r imageRow) any { return humanDuration(now.Sub(r.img.GetCreatedAt().AsTime())) + " ago" }},
		{"CreatedAt", "CREATED AT", func(r imageRow) any { return formatTime(r.img.GetCreatedAt().AsTime()) }},
		{"Size", "SIZE", func(r imageRow) any { return humanSize(r.img.GetSize()) }},
	}
}

func splitRepoTag(n string) (string, string) {
	if repo, _, ok := strings.Cut(n, "@"); ok {
		return repo, "<none>" // pulled by digest
	}
	for i := len(n) - 1; i >= 0; i-- {
		switch n[i] {
		case ':':
			return n[:i], n[i+1:]
		case '/', '@':
			return n, "<none>"
		}
	}
	return n, "<none>"
}

func humanSize(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2fGB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1fMB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1fkB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%dB", b)
}

func newImageRmCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm IMAGE [IMAGE...]",
		Aliases: []string{"remove"},
		Short:   "Remove images",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rc, done, err := g.runtimeClient()
			if err != nil {
				return err
			}
			defer done()
			for _, ref := range args {
				if _, err := rc.RemoveImage(cmd.Context(), &shoalv1.RemoveImageRequest{Ref: ref, Force: force}); err != nil {
					return err
				}
				fmt.Fprintf(g.out, "Deleted: %s\n", ref)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove an image even if it has several names")
	return cmd
}

func newImagePruneCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "prune",
		Short: "Remove dangling images and unused layers",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rc, done, err := g.runtimeClient()
			if err != nil {
				return err
			}
			defer done()
			resp, err := rc.PruneImages(cmd.Context(), &shoalv1.PruneImagesRequest{})
			if err != nil {
				return err
			}
			for _, r := range resp.GetRemoved() {
				fmt.Fprintf(g.out, "Deleted: %s\n", r)
			}
			fmt.Fprintf(g.out, "Total reclaimed space: %s\n", humanSize(resp.GetFreedBytes()))
			return nil
		},
	}
}

// noSuchImage rewrites a not-found error the way docker says it.
func noSuchImage(err error, ref string) error {
	if status.Code(err) == codes.NotFound {
		//lint:ignore ST1005 docker's wording
		return fmt.Errorf("No such image: %s", ref)
	}
	return err
}

func newImageTagCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			rc, done, err := g.runtimeClient()
			if err != nil {
				return err
			}
			defer done()
			_, err = rc.TagImage(cmd.Context(), &shoalv1.TagImageRequest{Source: args[0], Target: args[1]})
			return noSuchImage(err, args[0])
		},
	}
}

// imageInspect is docker's image inspect object, with the fields Shoal
// has, in docker's order.
type imageInspect struct {
	Id           string // docker's name
	RepoTags     []string
	RepoDigests  []string
	Created      string
	Config       imageInspectConfig
	Architecture string
	Variant      string `json:",omitempty"`
	Os           string
	Size         int64
	RootFS       imageInspectRootFS
}

type imageInspectConfig struct {
	User         string
	ExposedPorts map[string]struct{} `json:",omitempty"`
	Env          []string
	Cmd          []string
	WorkingDir   string
	Entrypoint   []string
	Labels       map[string]string
	StopSignal   string `json:",omitempty"`
}

type imageInspectRootFS struct {
	Type   string
	Layers []string
}

// inspectOf converts an image to docker's shape. RepoDigests are the
// digest names, and NAME@DIGEST for each repository naming an image whose
// manifest digest is known (as docker's containerd image store does).
func inspectOf(img *shoalv1.LocalImage) imageInspect {
	out := imageInspect{
		Id: img.GetId(), RepoTags: []string{}, RepoDigests: []string{},
		Created:      img.GetCreatedAt().AsTime().Format(time.RFC3339Nano),
		Architecture: img.GetArchitecture(), Variant: img.GetVariant(), Os: img.GetOs(), Size: img.GetSize(),
		RootFS: imageInspectRootFS{Type: "layers", Layers: img.GetLayers()},
	}
	if img.GetCreatedAt() == nil {
		out.Created = time.Time{}.Format(time.RFC3339Nano)
	}
	digests := map[string]bool{}
	for _, n := range img.GetNames() {
		if strings.Contains(n, "@") {
			digests[n] = true
			continue
		}
		out.RepoTags = append(out.RepoTags, n)
		if img.GetDigest() != "" {
			repo, _ := splitRepoTag(n)
			digests[repo+"@"+img.GetDigest()] = true
		}
	}
	for d := range digests {
		out.RepoDigests = append(out.RepoDigests, d)
	}
	sort.Strings(out.RepoTags)
	sort.Strings(out.RepoDigests)
	c := img.GetConfig()
	out.Config = imageInspectConfig{
		User: c.GetUser(), Env: c.GetEnv(), Cmd: c.GetCmd(), WorkingDir: c.GetWorkingDir(),
		Entrypoint: c.GetEntrypoint(), Labels: c.GetLabels(), StopSignal: c.GetStopSignal(),
	}
	if len(c.GetExposedPorts()) > 0 {
		out.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range c.GetExposedPorts() {
			out.Config.ExposedPorts[p] = struct{}{}
		}
	}
	return out
}

func newImageInspectCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect IMAGE [IMAGE...]",
		Short: "Display detailed information on one or more images",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := inspectTemplate(format)
			if err != nil {
				return err
			}
			rc, done, err := g.runtimeClient()
			if err != nil {
				return err
			}
			defer done()
			// Like docker: every image found is printed, then every error.
			out := []imageInspect{}
			var errs []string
			for _, ref := range args {
				resp, err := rc.InspectImage(cmd.Context(), &shoalv1.InspectImageRequest{Ref: ref})
				if err != nil {
					errs = append(errs, cleanError(noSuchImage(err, ref)).Error())
					continue
				}
				out = append(out, inspectOf(resp.GetImage()))
			}
			var buf bytes.Buffer
			if t == nil {
				b, err := json.MarshalIndent(out, "", "    ")
				if err != nil {
					return err
				}
				buf.Write(b)
				buf.WriteByte('\n')
			}
			for _, img := range out {
				if t == nil {
					break
				}
				// The template runs on docker's own shape: {{.Id}},
				// {{.Config.Cmd}}, {{.RootFS.Layers}}.
				if err := t.execute(&buf, img); err != nil {
					return err
				}
			}
			if _, err := buf.WriteTo(g.out); err != nil {
				return err
			}
			if len(errs) > 0 {
				return errors.New(strings.Join(errs, "\nError: "))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "json", "json, or a Go template run on each image with docker's field names: '{{.Id}} {{.Config.Cmd}}'")
	return cmd
}
