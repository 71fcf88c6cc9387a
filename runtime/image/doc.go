// Package image is the node-local image store of the container runtime.
//
// It pulls images from OCI and Docker v2 registries, loads them from
// docker-archive and OCI-layout tarballs, and keeps them under one root
// directory (Options.Root, which it owns): every layer is verified against
// its digests, stored once by diffID and unpacked once into a directory that
// every image and container using it shares as an overlayfs lower dir.
// Names, image records and container leases are JSON files written
// atomically, so a restarted daemon sees what it had and a crash never
// leaves anything that looks complete but is not.
//
// The package may touch only its root directory and the network towards
// registries (plain HTTP only to loopback or explicitly insecure ones). It
// knows nothing of services, tasks, gRPC or logging: it returns errors
// carrying errdefs categories and reports progress through an optional
// callback.
//
// Layout of the root:
//
//	state.json             images, names and leases (atomic rewrite)
//	blobs/sha256/<hex>     manifests and configs, by digest
//	layers/<hex>/diff      an unpacked layer, by diffID
//	layers/<hex>/layer.json
//	l/<short>              symlink to ../layers/<hex>/diff (short overlay paths)
//	tmp/                   spool files of loads in progress
//
// A layer is unpacked into layers/.tmp-* and renamed into place only when
// every digest matched, so a half-written layer is never visible.
package image
