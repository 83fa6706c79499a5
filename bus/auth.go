package bus

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Auth says who may connect when authentication is on, each with its own
// password (plain, or a bcrypt hash "$2a$…" as nats-server accepts). Nodes
// (and the middleware) live in the NATS account MEMSTORE, which holds every
// subject; users live in the account USERS, which sees only what MEMSTORE
// exports: requests on ms.api.> and ms.in.> (service imports, so the
// server stamps each with the user it authenticated) and events on
// ms.ev.>. A user can therefore neither reach ms.sys.> nor claim to be
// someone else.
type Auth struct {
	Nodes map[string]string `json:"nodes"`
	Users map[string]string `json:"users"`
}

// ErrAuth means an auth file is unusable.
var ErrAuth = errors.New("bus: bad auth file")

// LoadAuth reads an auth file: JSON {"nodes":{name:password},"users":{…}}.
func LoadAuth(file string) (*Auth, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAuth, err)
	}
	var a Auth
	if e := DecodeRequest(data, &a); e != nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrAuth, file, e.Message)
	}
	if len(a.Nodes) == 0 || len(a.Users) == 0 {
		return nil, fmt.Errorf("%w: %s names no nodes or no users", ErrAuth, file)
	}
	for _, m := range []map[string]string{a.Nodes, a.Users} {
		for name, pw := range m {
			if name == "" || pw == "" || strings.ContainsAny(name, " \t\r\n\"\\") || name == MiddlewareUser {
				return nil, fmt.Errorf("%w: %s: name %q needs a password, no spaces or quotes, and not to be %s", ErrAuth, file, name, MiddlewareUser)
			}
		}
	}
	for name := range a.Users {
		if _, ok := a.Nodes[name]; ok {
			return nil, fmt.Errorf("%w: %s: %q is both a node and a user", ErrAuth, file, name)
		}
	}
	return &a, nil
}

// Per-connection limits of an authenticated server.
const (
	MaxSubscriptions = 1000   // per connection
	MaxConnections   = 10_000 // in all
)

// MiddlewareUser is the middleware's own user in the MEMSTORE account; its
// password is made at each start.
const MiddlewareUser = "memstore-middleware"

// Accounts of an authenticated server.
const (
	AccountMemstore = "MEMSTORE"
	AccountUsers    = "USERS"
)

// HeaderRequestInfo is the header in which the NATS server names the
// authenticated sender of a request that crossed a service import.
const HeaderRequestInfo = "Nats-Request-Info"

// RequestUser reads the header the NATS server stamps on a request that
// crossed a service import from another account: crossed says there is
// one, user is the user the server authenticated. The user is empty when
// the import does not share it (no share: true), and then nobody vouches
// for the writer.
func RequestUser(info string) (user string, crossed bool) {
	var ci struct {
		Account string `json:"acc"`
		User    string `json:"user"`
	}
	if info == "" || json.Unmarshal([]byte(info), &ci) != nil || ci.Account == "" {
		return "", false
	}
	return ci.User, true
}

func randomPassword() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return hex.EncodeToString(b)
}

// serverConfig returns the nats-server configuration of an authenticated
// server and the middleware's password.
func (a *Auth) serverConfig(cfg ServerConfig) (string, string) {
	mwPassword := randomPassword()
	users := func(m map[string]string, extra string) string {
		names := make([]string, 0, len(m))
		for n := range m {
			names = append(names, n)
		}
		sort.Strings(names)
		var b strings.Builder
		for _, n := range names {
			fmt.Fprintf(&b, "      {user: %q, password: %q%s}\n", n, m[n], extra)
		}
		return b.String()
	}
	nodes := map[string]string{MiddlewareUser: mwPassword}
	for n, p := range a.Nodes {
		nodes[n] = p
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	userPerms := fmt.Sprintf(`, permissions: {publish: {allow: ["%[1]s.api.>", "%[1]s.in.>"]}, subscribe: {allow: ["%[1]s.ev.>", "_INBOX.>"]}}`, prefix)
	conf := fmt.Sprintf(`server_name: %q
host: %q
port: %d
max_payload: %d
max_subscriptions: %d
max_connections: %d
jetstream {
  store_dir: %q
}
accounts {
  %[8]s {
    jetstream: enabled
    users: [
%[10]s    ]
    exports: [
      {service: "%[12]s.api.>"}
      {service: "%[12]s.in.>"}
      {stream: "%[12]s.ev.>"}
    ]
  }
  %[9]s {
    users: [
%[11]s    ]
    imports: [
      {service: {account: %[8]s, subject: "%[12]s.api.>"}, share: true}
      {service: {account: %[8]s, subject: "%[12]s.in.>"}, share: true}
      {stream: {account: %[8]s, subject: "%[12]s.ev.>"}}
    ]
  }
}
`, cfg.Name, cfg.Host, cfg.Port, MaxPayload, MaxSubscriptions, MaxConnections, cfg.StoreDir, AccountMemstore, AccountUsers,
		users(nodes, ""), users(a.Users, userPerms), prefix)
	return conf, mwPassword
}
