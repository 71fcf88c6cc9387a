package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// command is one program hyperfine times. Args are split on spaces by
// hyperfine itself (-N: no shell), so none may contain a space.
type command struct {
	Name string `json:"name"`
	Line string `json:"command"`
}

// hyperfineResult is the part of hyperfine's --export-json we read.
type hyperfineResult struct {
	Results []struct {
		Command string    `json:"command"`
		Times   []float64 `json:"times"` // seconds
	} `json:"results"`
}

// runHyperfine times cmds with hyperfine, without a shell, in rounds
// invocations of runs/rounds runs each (warmup runs first in each). The
// commands of one invocation run one after the other, all runs of the
// first, then of the second; successive rounds rotate the order so that
// no command always goes first. It returns each command's times in run
// order. onExit registers the kill of a hyperfine still running when the
// program is stopped.
func runHyperfine(dir string, cmds []command, runs, warmup, rounds int, onExit func(func())) (map[string][]time.Duration, error) {
	times := map[string][]time.Duration{}
	per := runs / rounds
	for r := 0; r < rounds; r++ {
		n := per
		if r == rounds-1 {
			n = runs - per*(rounds-1)
		}
		order := append(append([]command{}, cmds[r%len(cmds):]...), cmds[:r%len(cmds)]...)
		out := filepath.Join(dir, fmt.Sprintf("hyperfine-%d.json", r))
		args := []string{"-N", "--style", "basic", "--warmup", strconv.Itoa(warmup), "--runs", strconv.Itoa(n), "--export-json", out}
		for _, c := range order {
			args = append(args, "--command-name", c.Name)
		}
		for _, c := range order {
			args = append(args, c.Line)
		}
		progress("round %d/%d: hyperfine %d runs of each of %d commands", r+1, rounds, n, len(order))
		cmd := exec.Command("hyperfine", args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("hyperfine: %w", err)
		}
		onExit(func() { _ = cmd.Process.Kill() }) // after Wait: ErrProcessDone, nothing sent
		if err := cmd.Wait(); err != nil {
			return nil, fmt.Errorf("hyperfine: %w", err)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			return nil, err
		}
		var res hyperfineResult
		if err := json.Unmarshal(data, &res); err != nil {
			return nil, fmt.Errorf("hyperfine JSON: %w", err)
		}
		if len(res.Results) != len(order) {
			return nil, fmt.Errorf("hyperfine JSON has %d results for %d commands", len(res.Results), len(order))
		}
		for i, c := range order {
			for _, s := range res.Results[i].Times {
				times[c.Name] = append(times[c.Name], time.Duration(s*float64(time.Second)))
			}
		}
	}
	return times, nil
}
