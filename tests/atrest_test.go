package tests

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-run/shoal/internal/filescan"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/harness"
)

// filesHolding lists the files under dir that hold marker.
func filesHolding(t *testing.T, dir string, marker []byte) []string {
	t.Helper()
	hits, read, err := filescan.Scan([][]byte{marker}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if read == 0 {
		t.Fatalf("no files under %s: nothing was checked", dir)
	}
	var found []string
	for _, h := range hits {
		found = append(found, h.Path)
	}
	return found
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// The managers' Raft data is encrypted at rest, and each manager's key
// material follows its role: a service spec carrying a marker is nowhere
// in the manager's data directory (Raft log and snapshots included)
// though inspect shows it; a worker has no key material and no Raft
// data; promoted, it gets material of its own and a Raft log that holds
// the marker only sealed; the manager restarted reads its log back;
// demoted, the worker loses both again.
func TestRaftDataEncryptedAtRest(t *testing.T) {
	c := harness.StartCluster(t, 1, 1, "--raft-snapshot-threshold", "16", "--raft-snapshot-interval", "200ms", "--raft-trailing-logs", "4")
	m, w := c.Managers[0], c.Workers[0]
	mData, wData := filepath.Join(m.Dir, "data"), filepath.Join(w.Dir, "data")
	if !exists(filepath.Join(m.CertDir(), "manager.keys")) {
		t.Fatal("the manager has no manager.keys in its certificates directory")
	}
	if exists(filepath.Join(w.CertDir(), "manager.keys")) || exists(filepath.Join(wData, "raft")) {
		t.Fatal("the worker has key material or raft data")
	}

	b := make([]byte, 16)
	_, _ = rand.Read(b)
	marker := "atrest-" + hex.EncodeToString(b)
	m.MustCLI("service", "create", "-d", "--name", "marked", "--replicas", "0", "-e", "MARKER="+marker, unreachableImage)
	client := m.Control()
	for i := range 40 {
		if _, err := client.CreateService(ctxT(t, 5*time.Second), &shoalv1.CreateServiceRequest{Spec: spec(fmt.Sprintf("pad-%d", i), 0)}); err != nil {
			t.Fatal(err)
		}
	}
	harness.Eventually(t, 20*time.Second, func() error {
		snaps, _ := filepath.Glob(filepath.Join(mData, "raft", "snapshots", "snapshots", "*", "state.bin"))
		if len(snaps) == 0 {
			return fmt.Errorf("%s has no snapshot yet", m.Name)
		}
		return nil
	})
	// The control: the cluster has the value.
	if out := m.MustCLI("service", "inspect", "marked"); !strings.Contains(out, marker) {
		t.Fatalf("service inspect does not show the marker:\n%s", out)
	}
	if found := filesHolding(t, mData, []byte(marker)); len(found) > 0 {
		t.Fatalf("the marker is on the manager's disk in the clear: %v", found)
	}

	// Promotion: material of its own, a sealed Raft log of its own.
	id := nodeID(t, w)
	m.MustCLI("node", "promote", id)
	harness.Eventually(t, 30*time.Second, func() error {
		if !exists(filepath.Join(w.CertDir(), "manager.keys")) {
			return fmt.Errorf("%s has no manager.keys yet", w.Name)
		}
		out, err := w.CLI("service", "inspect", "marked")
		if err != nil {
			return err
		}
		if !strings.Contains(out, marker) {
			return fmt.Errorf("the promoted node does not show the marker yet")
		}
		return nil
	})
	if !exists(filepath.Join(wData, "raft", "raft.db")) {
		t.Fatal("the promoted node has no raft log")
	}
	if bytes.Equal(readOrNil(filepath.Join(w.CertDir(), "manager.keys")), readOrNil(filepath.Join(m.CertDir(), "manager.keys"))) {
		t.Fatal("the promoted node has the same key material as the first manager")
	}
	if found := filesHolding(t, wData, []byte(marker)); len(found) > 0 {
		t.Fatalf("the marker is on the promoted node's disk in the clear: %v", found)
	}

	// A restarted manager reads its sealed log and snapshot back.
	m.Stop()
	m.Start()
	harness.Eventually(t, 30*time.Second, func() error {
		out, err := m.CLI("service", "inspect", "marked")
		if err != nil {
			return err
		}
		if !strings.Contains(out, marker) {
			return fmt.Errorf("after a restart the manager does not show the marker")
		}
		return nil
	})

	// Demotion: the material and the Raft data go.
	harness.Eventually(t, 20*time.Second, func() error {
		_, err := m.CLI("node", "demote", id)
		return err
	})
	harness.Eventually(t, 30*time.Second, func() error {
		if exists(filepath.Join(w.CertDir(), "manager.keys")) {
			return fmt.Errorf("%s still has manager.keys", w.Name)
		}
		if exists(filepath.Join(wData, "raft")) {
			return fmt.Errorf("%s still has raft data", w.Name)
		}
		return nil
	})
	// Still a working worker with a readable certificate set.
	if r := certRole(t, w); r != shoalv1.NodeRole_NODE_ROLE_WORKER {
		t.Fatalf("demoted node's certificate role = %v", r)
	}
	if found := filesHolding(t, wData, []byte(marker)); len(found) > 0 {
		t.Fatalf("the marker is on the demoted node's disk: %v", found)
	}
}

func readOrNil(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}
