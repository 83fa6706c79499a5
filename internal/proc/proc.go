// Package proc starts memstore's processes for the bench and for the tests
// that run real processes, each with its output in a log file, and stops
// them: gracefully, or with SIGKILL. It owns the goroutine that reaps each
// process.
package proc

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a started process; Done closes when it has exited.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs bin with args, its stdout and stderr appended to logFile.
func Start(bin, logFile string, args ...string) (*Proc, error) {
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("proc: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("proc: start %s %v: %w", bin, args, err)
	}
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Done closes when the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL (and SIGCONT, so a paused process is not left
// stopped) and waits for the exit.
func (p *Proc) Kill() {
	p.Signal(syscall.SIGCONT)
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop asks for a graceful exit (SIGTERM) and kills after 10 s.
func (p *Proc) Stop() {
	p.Signal(syscall.SIGCONT)
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.Kill()
	}
}

// FreeAddr returns a loopback address with a port free at the time. The
// port is below the kernel's range of ports for outgoing connections
// where it says what that is (Linux): a port in that range can be taken
// by any process's outgoing connection while its server is down, and a
// server restarted on its address then cannot listen (a bench run waited
// on such a server).
func FreeAddr() (string, error) {
	if low := ephemeralLow(); low > minPort {
		for range 100 {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", minPort+rand.IntN(low-minPort)))
			if err == nil {
				defer l.Close()
				return l.Addr().String(), nil
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("proc: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// minPort is the lowest port FreeAddr picks: well clear of the services'
// well-known and registered ports most machines use.
const minPort = 10000

// ephemeralLow is the first port the kernel gives outgoing connections,
// or 0 if it does not say.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}
