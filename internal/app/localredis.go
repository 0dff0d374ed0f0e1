package app

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// localRedis is a redis-server child process started for `make run` when nothing answered.
type localRedis struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startLocalRedis starts redis-server on the loopback address of opt when nothing answers there, with
// its data and log under dir (./var/redis). It returns nil when Redis already answers or the address is
// not loopback (then the usual connection error tells the operator).
func startLocalRedis(ctx context.Context, opt *redis.Options, dir string, log zerolog.Logger) (*localRedis, error) {
	d := net.Dialer{Timeout: time.Second}
	if conn, err := d.DialContext(ctx, "tcp", opt.Addr); err == nil {
		conn.Close() // something listens there; the usual ping decides whether it is a usable Redis
		return nil, nil
	}
	host, port, err := net.SplitHostPort(opt.Addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, nil
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("nothing answers on %s and redis-server is not installed (apt-get install redis-server)", opt.Addr)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	abs, _ := filepath.Abs(dir)
	args := []string{"--bind", "127.0.0.1", "--port", port, "--dir", abs, "--appendonly", "yes", "--save", "",
		"--maxmemory-policy", "noeviction", "--logfile", filepath.Join(abs, "redis.log")}
	if opt.Password != "" {
		args = append(args, "--requirepass", opt.Password)
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	lr := &localRedis{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(lr.done) }()
	log.Info().Str("addr", net.JoinHostPort("127.0.0.1", port)).Str("dir", dir).Msg("no Redis answered: started a local redis-server")
	return lr, nil
}

// stop terminates the child and waits for it (it saves its append-only file on SIGTERM).
func (l *localRedis) stop() {
	if l == nil {
		return
	}
	_ = l.cmd.Process.Signal(os.Interrupt)
	select {
	case <-l.done:
	case <-time.After(5 * time.Second):
		_ = l.cmd.Process.Kill()
		<-l.done
	}
}
