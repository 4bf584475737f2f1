// Package redistest gives tests a Redis to work with: a key prefix of their
// own on the shared server, or a private redis-server they may stop, kill
// and restart.
//
//	func TestSomething(t *testing.T) {
//		opts, prefix := redistest.Shared(t) // keys under prefix are deleted at the end
//		...
//		srv := redistest.Start(t) // a redis-server of the test's own
//		srv.Kill()                // SIGKILL, as a crash would
//		srv.Restart(t)            // same port, empty
//	}
//
// The shared server is found through TONE_TEST_REDIS_URL (default
// redis://127.0.0.1:6379/0). When it cannot be reached (or redis-server is
// not installed, for Start), tests fail if the environment has CI=true and
// are skipped, saying why, otherwise. The shared server is never flushed:
// only the test's own keys are deleted.
//
// The functions are safe for concurrent use by parallel tests.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is the shared server used when TONE_TEST_REDIS_URL is not set.
const DefaultURL = "redis://127.0.0.1:6379/0"

// unavailable fails the test under CI and skips it otherwise.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("redistest: %s (CI=true: a test needing Redis fails without it)", msg)
	}
	t.Skipf("redistest: SKIPPING, %s", msg)
}

// URL returns the shared server's URL.
func URL() string {
	if u := os.Getenv("TONE_TEST_REDIS_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Shared returns options for the shared server and a key prefix unique to
// the test. Every key under the prefix is deleted when the test ends.
func Shared(t testing.TB) (*redis.Options, string) {
	t.Helper()
	opts, err := redis.ParseURL(URL())
	if err != nil {
		t.Fatalf("redistest: TONE_TEST_REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		unavailable(t, "no Redis at %s: %v", URL(), err)
	}
	prefix := "tonetest:" + randomHex()
	t.Cleanup(func() {
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := DeletePrefix(ctx, rdb, prefix); err != nil {
			t.Logf("redistest: deleting keys %s:*: %v", prefix, err)
		}
	})
	return opts, prefix
}

// DeletePrefix deletes every key that starts with prefix and a colon.
func DeletePrefix(ctx context.Context, rdb *redis.Client, prefix string) error {
	iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := rdb.Del(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return rdb.Del(ctx, batch...).Err()
	}
	return nil
}

func randomHex() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Server is a private redis-server, without persistence, stopped when the
// test ends.
type Server struct {
	Addr string // host:port
	dir  string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start starts a redis-server on a free loopback port.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		unavailable(t, "redis-server not found: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &Server{Addr: addr, dir: t.TempDir()}
	s.start(t)
	t.Cleanup(func() { s.Kill() })
	return s
}

// URL returns the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Options returns options to reach the server.
func (s *Server) Options() *redis.Options { return &redis.Options{Addr: s.Addr} }

func (s *Server) start(t testing.TB) {
	t.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatalf("redistest: start redis-server: %v", err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	go cmd.Wait()
	rdb := redis.NewClient(s.Options())
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			t.Fatalf("redistest: redis-server on %s did not answer: %v\n%s", s.Addr, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server with SIGKILL and waits until its port is closed.
// Its data is lost (the server keeps none on disk).
func (s *Server) Kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	for range 200 {
		c, err := net.DialTimeout("tcp", s.Addr, 50*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
}

// Restart starts the server again on the same port (empty), killing it
// first if it runs.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	s.start(t)
}
