package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartRedis starts a Redis server of the test's own on a free loopback port, with extra
// configuration lines, and stops it when the test ends. It returns the server's address.
func StartRedis(t testing.TB, config ...string) string {
	t.Helper()
	return startRedis(t, config, nil).Addr
}

// RedisServer is a Redis server of a test's own, which the test may stop, kill and start again:
// on the same port and directory, so that a snapshot it saved (SAVE) is loaded again, as after a
// crash or a restart.
type RedisServer struct {
	// Addr is the server's host:port.
	Addr string
	// TLSAddr is the host:port of its TLS listener, when it has one (StartRedisTLS).
	TLSAddr string
	// Dir is its working directory, where its snapshot (dump.rdb) goes.
	Dir string

	t    testing.TB
	path string // its configuration file
	args []string
	cmd  *exec.Cmd
}

// NewRedis starts a Redis server of the test's own, as StartRedis does, and returns it.
func NewRedis(t testing.TB, config ...string) *RedisServer {
	t.Helper()
	return startRedis(t, config, nil)
}

// StartRedisTLS starts a Redis server that also listens for TLS, with a self-signed certificate
// for 127.0.0.1 (clients connect with skip_verify=true).
func StartRedisTLS(t testing.TB) *RedisServer {
	t.Helper()
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	port := freePort(t)
	r := startRedis(t, []string{"tls-port " + strconv.Itoa(port), "tls-cert-file " + cert, "tls-key-file " + key,
		"tls-auth-clients no"}, nil)
	r.TLSAddr = "127.0.0.1:" + strconv.Itoa(port)
	return r
}

func startRedis(t testing.TB, config, args []string) *RedisServer {
	t.Helper()
	port := freePort(t)
	dir := t.TempDir()
	conf := append([]string{"bind 127.0.0.1", "port " + strconv.Itoa(port), "dir " + dir, `save ""`,
		"appendonly no", "daemonize no"}, config...)
	r := &RedisServer{t: t, Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: dir, path: filepath.Join(dir, "redis.conf"), args: args}
	if err := os.WriteFile(r.path, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.Start()
	t.Cleanup(r.Kill)
	return r
}

// URL returns the server's redis:// URL.
func (r *RedisServer) URL() string { return "redis://" + r.Addr + "/0" }

// Start starts the server, which must not run, and waits until it answers.
func (r *RedisServer) Start() {
	r.t.Helper()
	r.cmd = exec.CommandContext(context.Background(), "redis-server", append([]string{r.path}, r.args...)...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("testenv: start redis-server: %v", err)
	}
	waitFor(r.t, "redis-server on "+r.Addr, func() bool { return redisCLI(r.Addr, "ping") == "PONG" })
}

// Stop stops the server as an operator would (SIGTERM: it closes its connections and exits),
// and waits until it has exited: new connections are refused from then on.
func (r *RedisServer) Stop() {
	r.t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		r.t.Fatalf("testenv: stop redis-server: %v", err)
	}
	r.cmd.Wait() //nolint:errcheck // it exits on the signal
	r.cmd = nil
}

// Kill kills the server with SIGKILL, as a crash would: nothing is saved.
func (r *RedisServer) Kill() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill() //nolint:errcheck // it may be gone already
	r.cmd.Wait()         //nolint:errcheck // killed
	r.cmd = nil
}

// CLI runs redis-cli against the server and returns its output, trimmed.
func (r *RedisServer) CLI(args ...string) string { return redisCLI(r.Addr, args...) }

// freePort returns a loopback port free at the time of the call.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// StartRedisCluster starts a Redis Cluster of three masters and returns their addresses.
func StartRedisCluster(t testing.TB) []string {
	t.Helper()
	var addrs []string
	for range 3 {
		addrs = append(addrs, StartRedis(t, "cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-node-timeout 2000"))
	}
	create := exec.CommandContext(context.Background(), "redis-cli", append(append([]string{"--cluster", "create"}, addrs...), "--cluster-yes")...)
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("testenv: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range addrs {
		waitFor(t, "cluster state ok on "+a, func() bool { return strings.Contains(redisCLI(a, "cluster", "info"), "cluster_state:ok") })
	}
	return addrs
}

// StartRedisSentinel starts a Redis master and a Sentinel watching it as master name, and
// returns the Sentinel's address.
func StartRedisSentinel(t testing.TB, name string) string {
	t.Helper()
	master := StartRedis(t)
	host, port, _ := net.SplitHostPort(master)
	sentinel := startRedis(t, []string{fmt.Sprintf("sentinel monitor %s %s %s 1", name, host, port),
		fmt.Sprintf("sentinel down-after-milliseconds %s 5000", name)}, []string{"--sentinel"}).Addr
	waitFor(t, "sentinel knows "+name, func() bool {
		return strings.Contains(redisCLI(sentinel, "sentinel", "get-master-addr-by-name", name), port)
	})
	return sentinel
}

func redisCLI(addr string, args ...string) string {
	host, port, _ := net.SplitHostPort(addr)
	out, _ := exec.CommandContext(context.Background(), "redis-cli", append([]string{"-h", host, "-p", port}, args...)...).Output()
	return strings.TrimSpace(string(out))
}

func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("testenv: no %s within 15 s", what)
		}
		time.Sleep(50 * time.Millisecond) // polling the server, with a deadline
	}
}

// Redis returns a client of the tests' Redis server (TEST_REDIS_URL), closed when the test ends.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	rdb := redisClient(t)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}
