package cluster

import (
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/internal/stackconfig"
)

// answerTimeout is how long a node's Talos API gets to answer before `pulumi up` stops.
const answerTimeout = 5 * time.Second

// reachable stops `pulumi up`, before any node is touched, when a listed node's Talos API does not
// answer within seconds: the Talos provider would retry every call to it for its whole 10-minute
// timeout, once per resource. It checks that the API port accepts a TCP connection (a node in
// maintenance mode answers too). A preview skips it: it contacts no node.
func reachable(ctx *pulumi.Context, nodes []stackconfig.Node) error {
	if ctx.DryRun() {
		return nil
	}
	var mu sync.Mutex
	var down []string
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := probe(n.Address); err != nil {
				mu.Lock()
				down = append(down, fmt.Sprintf("%s (%s): %v", n.Name, n.Address, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(down) == 0 {
		return nil
	}
	sort.Strings(down)
	return fmt.Errorf("the Talos API of %d node(s) does not answer on port 50000; nothing was changed:\n  - %s\n"+
		"bring the node back (or check the network between this machine and it), or, to take a dead node out of the cluster, "+
		"remove it from homelab:cluster.nodes and run pulumi up again", len(down), strings.Join(down, "\n  - "))
}

// probe checks that a node's Talos API accepts connections; tests replace it.
var probe = func(address string) error {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(address, "50000"), answerTimeout)
	if err != nil {
		return err
	}
	return conn.Close()
}
