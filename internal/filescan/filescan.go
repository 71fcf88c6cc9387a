// Package filescan finds values in files: which files under a directory
// hold any of them. Tests use it to show that a secret reached no disk.
// It imports nothing of the product.
package filescan

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// A Hit is a file that holds a needle.
type Hit struct {
	Path   string
	Needle int // its index in the needles given
}

// Scan reads every regular file under dirs and returns those that hold
// any of needles, with the number of files it read (so that a caller can
// tell "nothing found" from "nothing looked at"). A file removed while
// it walks (a snapshot reaped) is passed over; any other error ends it.
func Scan(needles [][]byte, dirs ...string) (hits []Hit, read int, err error) {
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			data, err := os.ReadFile(path)
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			read++
			for i, n := range needles {
				if bytes.Contains(data, n) {
					hits = append(hits, Hit{path, i})
				}
			}
			return nil
		})
		if err != nil {
			return hits, read, err
		}
	}
	return hits, read, nil
}
