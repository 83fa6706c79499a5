package proc

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeAddrBelowEphemeralPorts: where the kernel says which ports it
// gives outgoing connections, FreeAddr's port is below them, and free.
func TestFreeAddrBelowEphemeralPorts(t *testing.T) {
	low := ephemeralLow()
	if low <= minPort {
		t.Skipf("the kernel gives no range above %d (%d)", minPort, low)
	}
	for range 20 {
		addr, err := FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		_, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		if port < minPort || port >= low {
			t.Fatalf("FreeAddr gave %s: not in [%d, %d)", addr, minPort, low)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("FreeAddr gave %s, which is not free: %v", addr, err)
		}
		l.Close()
	}
}
