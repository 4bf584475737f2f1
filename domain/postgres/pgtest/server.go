package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tone-ai/tone/migrations"
)

// Server is a private PostgreSQL server in a temporary directory (initdb
// and pg_ctl from /usr/lib/postgresql/*/bin), for tests that stop and
// restart it; the shared server stays up for every other test. It trusts
// local connections, keeps no data safe (fsync off) and is stopped when the
// test ends. When run as root, the server runs as the postgres user.
type Server struct {
	Port int
	dir  string
	bin  string
	cred *syscall.Credential
}

// StartServer initialises, starts and migrates a private server. It fails
// the test under CI=true, and skips it otherwise, if PostgreSQL's server
// binaries are not installed.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		unavailable(t, fmt.Errorf("no initdb under /usr/lib/postgresql/*/bin"))
	}
	sort.Strings(bins)
	s := &Server{bin: filepath.Dir(bins[len(bins)-1])}
	dir, err := os.MkdirTemp("", "tone-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s.dir = dir
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			unavailable(t, fmt.Errorf("running as root and no postgres user to run the server: %w", err))
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	s.run(t, "initdb", "-D", s.data(), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
	s.Start(t)
	t.Cleanup(func() { s.pgctl("stop", "-m", "immediate") })
	db, err := migrations.Open(s.OwnerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := migrations.Up(ctx, db); err != nil {
		t.Fatalf("pgtest: migrate the private server: %v", err)
	}
	return s
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// OwnerURL connects as the superuser postgres.
func (s *Server) OwnerURL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
}

// AppURL connects as the application role, tone_app.
func (s *Server) AppURL() string {
	return fmt.Sprintf("postgres://tone_app@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
}

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

func (s *Server) run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := s.command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("pgtest: %s: %v\n%s", name, err, out)
	}
}

func (s *Server) pgctl(args ...string) ([]byte, error) {
	return s.command("pg_ctl", append([]string{"-D", s.data(), "-w", "-t", "30"}, args...)...).CombinedOutput()
}

// Start starts the server and waits until it accepts connections.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off", s.Port, s.dir)
	if out, err := s.pgctl("start", "-l", filepath.Join(s.dir, "server.log"), "-o", opts); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		t.Fatalf("pgtest: pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, s.OwnerURL())
		if err == nil {
			conn.Close(ctx)
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("pgtest: private server not answering: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the server at once (immediate mode: like a crash, recovered
// from the WAL at the next start).
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if out, err := s.pgctl("stop", "-m", "immediate"); err != nil {
		t.Fatalf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
}
