package verifytest

import (
	"net"
	"sync"
	"time"
)

// replyBufListener hands go-smtp connections whose replies are buffered until
// the server next waits for input, as production MTAs do (Postfix's smtpd
// flushes its output only when no pipelined command is left to read): the
// replies to a pipelined group of commands leave in one write instead of one
// write each. The listener also owns the timeouts (idle: the wait for client
// bytes; write: each flush), set once per read or flush instead of once per
// command, so the server's own ReadTimeout and WriteTimeout stay zero.
type replyBufListener struct {
	net.Listener
	idle, write time.Duration
}

func (l replyBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &replyBufConn{Conn: c, idle: l.idle, write: l.write}, nil
}

type replyBufConn struct {
	net.Conn
	idle, write time.Duration

	mu  sync.Mutex // Close may come from Server.Close's goroutine
	buf []byte
}

// Write buffers: the server's replies leave when it next reads (or closes).
func (c *replyBufConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.buf = append(c.buf, p...)
	c.mu.Unlock()
	return len(p), nil
}

func (c *replyBufConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.buf) == 0 {
		return nil
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.write))
	_, err := c.Conn.Write(c.buf)
	if cap(c.buf) > 64<<10 {
		c.buf = nil
	} else {
		c.buf = c.buf[:0]
	}
	return err
}

// Read flushes the pending replies, then waits at most the idle timeout for
// the client (a timeout makes go-smtp say 421 and hang up, as its own
// ReadTimeout would).
func (c *replyBufConn) Read(p []byte) (int, error) {
	if err := c.flush(); err != nil {
		return 0, err
	}
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	return c.Conn.Read(p)
}

func (c *replyBufConn) Close() error {
	_ = c.flush()
	return c.Conn.Close()
}
