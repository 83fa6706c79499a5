package main

import (
	"errors"
	"fmt"
	"testing"

	"memstore/bus"
	"memstore/client"
)

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{usageError{errors.New("accepts 1 arg")}, 2},
		{bus.Errorf(bus.CodeNotFound, "x"), 3},
		{fmt.Errorf("wrapped: %w", bus.Errorf(bus.CodeUnavailable, "x")), 4},
		{bus.Errorf(bus.CodeTimeout, "x"), 4},
		{fmt.Errorf("%w (get)", client.ErrTimeout), 4},
		{bus.Errorf(bus.CodeBadPath, "x"), 1},
		{errors.New("other"), 1},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	root := newRoot()
	for _, c := range root.Commands() {
		if c.Short == "" {
			t.Errorf("%s has no help", c.Name())
		}
	}
	root.SetArgs([]string{"get"})
	if err := root.Execute(); exitCode(err) != 2 {
		t.Fatalf("get without a path: %v", err)
	}
}
