package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// ErrNotLoopback is wrapped by every refusal to load a host that is not on
// this machine's loopback interface.
var ErrNotLoopback = errors.New("load tests only target loopback addresses (127.0.0.0/8, ::1)")

// CheckLoopback parses a target URL (http, https, ws or wss), resolves its
// host, and returns nil only if every address it resolves to is a loopback
// address. Load tests must never leave the machine.
func CheckLoopback(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("target %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "http", "https", "ws", "wss":
	default:
		return fmt.Errorf("target %q: want an http:// or ws:// URL", rawURL)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("target %q: no host", rawURL)
	}
	return checkHost(ctx, host)
}

// checkHost resolves host and checks that every address is loopback.
func checkHost(ctx context.Context, host string) error {
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("%w: %s is not", ErrNotLoopback, host)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("%w: cannot resolve %q: %v", ErrNotLoopback, host, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("%w: %q resolves to nothing", ErrNotLoopback, host)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return fmt.Errorf("%w: %q resolves to %s", ErrNotLoopback, host, a.IP)
		}
	}
	return nil
}

// parseSourceIPs parses the local addresses connections are spread over;
// each must be a loopback address. None means the system's choice.
func parseSourceIPs(list []string) ([]net.IP, error) {
	var out []net.IP
	for _, s := range list {
		ip := net.ParseIP(strings.TrimSpace(s))
		if ip == nil {
			return nil, fmt.Errorf("source address %q: not an IP address", s)
		}
		if !ip.IsLoopback() {
			return nil, fmt.Errorf("source address %s: %w", ip, ErrNotLoopback)
		}
		out = append(out, ip)
	}
	return out, nil
}

// loopbackDial dials like net.Dialer and then refuses, closing it, any
// connection whose remote end is not a loopback address, so that a
// redirect or a changed DNS answer cannot send load elsewhere.
func loopbackDial(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
			c.Close()
			return nil, fmt.Errorf("dial %s: %w (remote %s)", addr, ErrNotLoopback, c.RemoteAddr())
		}
		return c, nil
	}
}

// newHTTPClient returns a client whose connections come from local (nil:
// the system's choice) and may only reach loopback addresses.
func newHTTPClient(local net.IP, maxIdle int) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: -1}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local}
	}
	return &http.Client{Transport: &http.Transport{
		DialContext:         loopbackDial(d),
		MaxIdleConnsPerHost: maxIdle,
		IdleConnTimeout:     30 * time.Second,
		ForceAttemptHTTP2:   false,
	}}
}

// dialers spreads WebSocket connections over source addresses round-robin.
type dialers struct {
	clients []*http.Client
	next    atomic.Uint64
}

func newDialers(sources []net.IP) *dialers {
	d := &dialers{}
	if len(sources) == 0 {
		sources = []net.IP{nil}
	}
	for _, ip := range sources {
		// Upgraded connections are hijacked, never pooled.
		d.clients = append(d.clients, newHTTPClient(ip, 0))
	}
	return d
}

func (d *dialers) pick() *http.Client {
	return d.clients[int(d.next.Add(1)-1)%len(d.clients)]
}
