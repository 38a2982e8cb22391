// Package pgtest starts a real PostgreSQL server for tests: Debian's binaries
// (initdb, pg_ctl under /usr/lib/postgresql/<version>/bin) in a temporary data
// directory on a free loopback port, one server per test package (Main, from
// TestMain) and a fresh database per test (Start). As root, the server runs as the
// postgres OS user (PostgreSQL refuses to run as root).
//
// MIMIDS_TEST_POSTGRES_DSN names an existing server to use instead (its user must
// be allowed to create databases). When no server can be had, Start fails the test
// with the reason if the CI environment variable is set, and skips it with the
// reason otherwise: a test never passes without a server.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names an existing server to use instead of starting one.
const EnvDSN = "MIMIDS_TEST_POSTGRES_DSN"

// EnvDurable, when set to 1, keeps fsync and synchronous_commit on in the started
// server (benchmarks that compare durable commits); tests run without them.
const EnvDurable = "MIMIDS_TEST_POSTGRES_DURABLE"

// server is the package's server. Set by Main before the tests run.
var server struct {
	base    string // DSN of the maintenance database ("postgres")
	err     error  // why there is no server
	stop    func()
	created atomic.Int64
}

// Main starts the server, runs the tests and stops it; call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	code := func() int {
		if dsn := os.Getenv(EnvDSN); dsn != "" {
			server.base = dsn
		} else {
			s, err := startServer(context.Background(), false)
			if err != nil {
				server.err = err
			} else {
				server.base, server.stop = s.dsn("postgres"), s.close
			}
		}
		defer func() {
			if server.stop != nil {
				server.stop()
				return
			}
			dropTemplates() // on a server pgtest did not start
		}()
		return m.Run()
	}()
	os.Exit(code)
}

// Start returns the DSN of a new, empty database for t on the package's server; the
// database is dropped when t ends (on a server pgtest started, with the server).
func Start(t testing.TB) string {
	t.Helper()
	return StartFrom(t, "", nil)
}

// templates are the template databases made by StartFrom, by name.
var templates sync.Map // name -> *template

type template struct {
	once sync.Once
	err  error
}

// StartFrom is Start, with the new database a copy of the template database
// called name, which prepare fills the first time (applying a schema's
// migrations, say): copying a template is faster than preparing each database.
// prepare must close its connections before it returns.
func StartFrom(t testing.TB, name string, prepare func(ctx context.Context, dsn string) error) string {
	t.Helper()
	if server.base == "" {
		reason := server.err
		if reason == nil {
			reason = errors.New("pgtest.Main did not run (call it from TestMain)")
		}
		if os.Getenv("CI") != "" {
			t.Fatalf("pgtest: no PostgreSQL server: %v", reason)
		}
		t.Skipf("pgtest: no PostgreSQL server (set %s, or install Debian's postgresql package): %v", EnvDSN, reason)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := fmt.Sprintf("mimids_test_%d_%d", os.Getpid(), server.created.Add(1))
	stmt := "CREATE DATABASE " + db
	if name != "" {
		tpl := templateName(name)
		v, _ := templates.LoadOrStore(name, &template{})
		tp := v.(*template)
		tp.once.Do(func() { tp.err = makeTemplate(ctx, tpl, prepare) })
		if tp.err != nil {
			t.Fatalf("pgtest: template %s: %v", name, tp.err)
		}
		stmt += " TEMPLATE " + tpl
	}
	if err := admin(ctx, stmt); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	if server.stop != nil {
		// The server and its databases go when the tests end.
		return dsnOf(t, db)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := admin(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop database %s: %v", db, err)
		}
	})
	return dsnOf(t, db)
}

func dsnOf(t testing.TB, name string) string {
	dsn, err := withDatabase(server.base, name)
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

func templateName(name string) string { return fmt.Sprintf("mimids_template_%d_%s", os.Getpid(), name) }

// makeTemplate creates the template database tpl and has prepare fill it.
func makeTemplate(ctx context.Context, tpl string, prepare func(ctx context.Context, dsn string) error) error {
	if err := admin(ctx, "CREATE DATABASE "+tpl); err != nil {
		return err
	}
	dsn, err := withDatabase(server.base, tpl)
	if err != nil {
		return err
	}
	return prepare(ctx, dsn)
}

// admin runs one statement on the maintenance database.
func admin(ctx context.Context, stmt string) error {
	conn, err := pgx.Connect(ctx, server.base)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, stmt)
	return err
}

// withDatabase is dsn (a URL or key=value DSN) naming database name.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("pgtest: %s: %w", EnvDSN, err)
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	return dsn + " dbname=" + name, nil
}

// Server is a PostgreSQL server started in a temporary directory.
type Server struct {
	dir    string // the data directory's parent, removed by Close
	port   int
	bin    string
	runAs  []string // prefix that runs a command as the server's OS user
	closed sync.Once
}

// StartServer starts a server of its own (for tests that stop and restart it);
// most tests use Start. Its commits survive Stop (an immediate shutdown, as in
// a crash of the server process); the shared server's do not wait for the WAL.
func StartServer(t testing.TB) *Server {
	t.Helper()
	s, err := startServer(context.Background(), true)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("pgtest: start PostgreSQL: %v", err)
		}
		t.Skipf("pgtest: start PostgreSQL: %v", err)
	}
	t.Cleanup(s.close)
	return s
}

// NewDatabase creates an empty database on the server and returns its DSN; it goes
// with the server.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := fmt.Sprintf("mimids_own_%d", server.created.Add(1))
	conn, err := pgx.Connect(ctx, s.dsn("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return s.dsn(name)
}

// DSN is the server's DSN for database name.
func (s *Server) DSN(name string) string { return s.dsn(name) }

func (s *Server) dsn(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, name)
}

// binDir finds the newest Debian PostgreSQL installation.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("no /usr/lib/postgresql/*/bin/pg_ctl (apt-get install postgresql)")
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

func startServer(ctx context.Context, crashSafe bool) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mimids-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		if err := s.chownTo("postgres"); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s.runAs = []string{"runuser", "-u", "postgres", "--"}
	}
	if err := s.initdb(ctx, crashSafe); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// A free port can be taken between the probe and the start: try a few.
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err == nil {
			if err = s.start(ctx); err == nil {
				return s, nil
			}
		}
		if attempt == 3 {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

// chownTo gives the temporary directory to the OS user name.
func (s *Server) chownTo(name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("pgtest: running as root needs the %s OS user: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(s.dir, uid, gid)
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

func (s *Server) run(ctx context.Context, name string, args ...string) error {
	argv := append(append(append([]string{}, s.runAs...), filepath.Join(s.bin, name)), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = s.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// initdb makes the data directory. Without EnvDurable, fsync is off (a crash of
// the machine may lose commits, a crash of the server does not); without
// crashSafe, commits do not wait for the WAL either.
func (s *Server) initdb(ctx context.Context, crashSafe bool) error {
	if err := s.run(ctx, "initdb", "-D", s.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8",
		"--locale=C", "--no-sync"); err != nil {
		return err
	}
	conf := []string{
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = ''",
		"max_connections = 200",
		"shared_buffers = 64MB",
		"log_min_messages = warning",
	}
	if os.Getenv(EnvDurable) != "1" {
		conf = append(conf, "fsync = off", "full_page_writes = off")
		if !crashSafe {
			conf = append(conf, "synchronous_commit = off")
		}
	}
	f, err := os.OpenFile(filepath.Join(s.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgtest: configure: %w", err)
	}
	defer f.Close()
	_, err = f.WriteString("\n# pgtest\n" + strings.Join(conf, "\n") + "\n")
	return err
}

// start starts the server on s.port and waits until it accepts connections.
func (s *Server) start(ctx context.Context) error {
	return s.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", s.data(), "-l", filepath.Join(s.dir, "log"),
		"-o", "-p "+strconv.Itoa(s.port))
}

// Stop stops the server at once (as a crash would); Restart starts it again on the
// same port and data.
func (s *Server) Stop(ctx context.Context) error {
	return s.run(ctx, "pg_ctl", "stop", "-w", "-m", "immediate", "-D", s.data())
}

// Restart starts a stopped server again.
func (s *Server) Restart(ctx context.Context) error { return s.start(ctx) }

func (s *Server) close() {
	s.closed.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s.Stop(ctx)
		os.RemoveAll(s.dir)
	})
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func dropTemplates() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	templates.Range(func(k, _ any) bool {
		admin(ctx, "DROP DATABASE IF EXISTS "+templateName(k.(string))+" WITH (FORCE)")
		return true
	})
}
