package bus

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

func TestLoadAuth(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		f := filepath.Join(dir, "auth.json")
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	a, err := LoadAuth(write(`{"nodes":{"node1":"x"},"users":{"alice":"$2a$11$abc"}}`))
	if err != nil || a.Nodes["node1"] != "x" || a.Users["alice"] != "$2a$11$abc" {
		t.Fatalf("%+v %v", a, err)
	}
	for _, bad := range []string{
		`{"nodes":{"node1":"x"}}`,                                 // no users
		`{"nodes":{"n":"x"},"users":{"n":"y"}}`,                   // both
		`{"nodes":{"n":"x"},"users":{"a b":"y"}}`,                 // space
		`{"nodes":{"n":"x"},"users":{"a":""}}`,                    // no password
		`{"nodes":{"memstore-middleware":"x"},"users":{"a":"y"}}`, // reserved
		`{"nodes":{"n":"x"},"users":{"a":"y"},"admins":{}}`,       // unknown field
		`not json`,
	} {
		if _, err := LoadAuth(write(bad)); !errors.Is(err, ErrAuth) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if _, err := LoadAuth(filepath.Join(dir, "missing.json")); !errors.Is(err, ErrAuth) {
		t.Errorf("missing file: %v", err)
	}
}

// TestAuthServerConfig: the generated configuration is one nats-server
// accepts, with the two accounts and their users.
func TestAuthServerConfig(t *testing.T) {
	a := &Auth{Nodes: map[string]string{"node1": "p1"}, Users: map[string]string{"alice": "p2"}}
	conf, mw := a.serverConfig(ServerConfig{Name: "t", Host: "127.0.0.1", Port: -1, StoreDir: t.TempDir()})
	if len(mw) < 32 || !strings.Contains(conf, mw) {
		t.Fatalf("middleware password %q not in the config", mw)
	}
	f := filepath.Join(t.TempDir(), "auth.conf")
	if err := os.WriteFile(f, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(f)
	if err != nil {
		t.Fatalf("%v\n%s", err, conf)
	}
	users := map[string]string{}
	for _, u := range opts.Users {
		users[u.Username] = u.Account.Name
	}
	if users["node1"] != AccountMemstore || users[MiddlewareUser] != AccountMemstore || users["alice"] != AccountUsers {
		t.Fatalf("users and accounts: %v", users)
	}
}
