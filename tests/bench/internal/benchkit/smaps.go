package benchkit

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Rollup is a process's /proc/PID/smaps_rollup, in KiB. Pss divides each
// shared page by the number of processes mapping it, so summing Pss over
// processes counts every page once: the honest per-process cost when many
// processes run the same binary.
type Rollup struct {
	Rss       int64 `json:"rss_kib"`
	Pss       int64 `json:"pss_kib"`
	PssAnon   int64 `json:"pss_anon_kib"`
	PssFile   int64 `json:"pss_file_kib"`
	Anonymous int64 `json:"anonymous_kib"`
	Private   int64 `json:"private_kib"` // Private_Clean + Private_Dirty
}

// ReadRollup reads /proc/PID/smaps_rollup.
func ReadRollup(pid int) (Rollup, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return Rollup{}, err
	}
	defer f.Close()
	var r Rollup
	var pc, pd int64
	fields := map[string]*int64{"Rss": &r.Rss, "Pss": &r.Pss, "Pss_Anon": &r.PssAnon, "Pss_File": &r.PssFile,
		"Anonymous": &r.Anonymous, "Private_Clean": &pc, "Private_Dirty": &pd}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if p := fields[k]; ok && p != nil {
			if fs := strings.Fields(v); len(fs) > 0 {
				*p, _ = strconv.ParseInt(fs[0], 10, 64)
			}
		}
	}
	r.Private = pc + pd
	return r, sc.Err()
}
