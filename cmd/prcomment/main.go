// Command prcomment writes the pull-request comment of a stack's preview, from the preview's
// engine event log:
//
//	pulumi preview --stack norns --event-log preview.json
//	go run ./cmd/prcomment --stack norns --events preview.json > comment.md
//
// The comment starts with a marker per stack (<!-- homelab-preview:norns -->), so the workflow
// updates one comment per stack in place. Secrets are masked in the event log; the comment repeats
// nothing of them. It exits with status 1 when the event log cannot be read.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"homelab/internal/prcomment"
	"homelab/internal/stackfile"
)

func main() {
	flags := flag.NewFlagSet("prcomment", flag.ContinueOnError)
	stack := flags.String("stack", "", "stack name: reads Pulumi.<stack>.yaml from the working directory (required)")
	events := flags.String("events", "", "the preview's event log, from pulumi preview --event-log (required; - for stdin)")
	if err := flags.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if *stack == "" || *events == "" {
		fmt.Fprintln(os.Stderr, "prcomment: --stack and --events are required")
		flags.Usage()
		os.Exit(2)
	}
	if err := run(*stack, *events, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "prcomment:", err)
		os.Exit(1)
	}
}

func run(stack, events string, out io.Writer) error {
	cfg, _, err := stackfile.LoadConfig(".", stack)
	if err != nil {
		return err
	}
	in := os.Stdin
	if events != "-" {
		f, err := os.Open(events)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	list, err := prcomment.ReadEvents(in)
	if err != nil {
		return fmt.Errorf("--events %s: %w", events, err)
	}
	_, err = io.WriteString(out, prcomment.Build(stack, cfg.Cluster, cfg.Rollout, prcomment.FromEvents(list)))
	return err
}
