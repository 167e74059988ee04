// Command ferretdb-launcher runs FerretDB 1.x (embedded package) with the
// PostgreSQL handler on a TCP listener.
//
// Why a launcher instead of `go install .../cmd/ferretdb`: the upstream command,
// built outside FerretDB's own repository, panics at start because
// build/version wants a generated version.txt that the Go module does not ship
// (FerretDB#2982). The embeddable package skips that check.
//
// Usage:
//
//	ferretdb-launcher -listen 127.0.0.1:57017 -postgresql-url postgres://fittrack@127.0.0.1:55432/ferretdb
//
// Every flag can also be given by environment variable (a flag wins):
// FERRETDB_LISTEN, FERRETDB_POSTGRESQL_URL, FERRETDB_LOG_LEVEL.
// The process stops cleanly on SIGINT/SIGTERM.
//
// With -watchdog, the launcher sends itself a `ping` every interval. When three
// in a row get no answer within the interval, FerretDB is wedged (seen with
// 1.24.2 under load: every pooled PostgreSQL connection held by update commands
// waiting for one more, see fittrack/core/adapters/mongo.py): the launcher writes every
// goroutine's stack to -dump-dir for diagnosis and replaces itself with a fresh
// copy of the same program (same pid, so infra/services.sh still knows it).
// This is defence in depth; the metric store's small commands are the fix.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func main() {
	listen := flag.String("listen", envOr("FERRETDB_LISTEN", "127.0.0.1:27017"), "TCP listen address (host:port)")
	pgURL := flag.String("postgresql-url", envOr("FERRETDB_POSTGRESQL_URL", "postgres://127.0.0.1:5432/ferretdb"), "PostgreSQL connection URL for the postgresql handler")
	logLevel := flag.String("log-level", envOr("FERRETDB_LOG_LEVEL", "warn"), "log level: debug, info, warn, error")
	watchdog := flag.Duration("watchdog", 0, "ping interval of the liveness watchdog (0: no watchdog)")
	dumpDir := flag.String("dump-dir", ".", "where the watchdog writes the goroutine dump of a wedged FerretDB")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-launcher: bad -log-level %q: %v\n", *logLevel, err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: *listen},
		Logger:        logger,
		Handler:       "postgresql",
		PostgreSQLURL: *pgURL,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-launcher: %v\n", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	logger.Warn("ferretdb-launcher starting", "listen", *listen, "handler", "postgresql")
	if *watchdog > 0 {
		go watch(ctx, logger, *listen, *watchdog, *dumpDir)
	}

	err = f.Run(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "ferretdb-launcher: %v\n", err)
		os.Exit(1)
	}
	logger.Warn("ferretdb-launcher stopped")
}

// strikes is how many pings in a row may go unanswered before FerretDB counts as wedged.
const strikes = 3

// watch pings the listener every interval once it first answered, and restarts the process when it stops.
func watch(ctx context.Context, logger *slog.Logger, addr string, interval time.Duration, dumpDir string) {
	answered, missed := false, 0
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		err := ping(addr, interval)
		switch {
		case err == nil:
			if !answered {
				// Said once, at the level the launcher logs at, so an operator (and a test) knows it is armed.
				logger.Warn("watchdog: armed, FerretDB answered its first ping", "interval", interval)
			}
			answered, missed = true, 0
		case answered:
			missed++
			logger.Warn("watchdog: ping unanswered", "missed", missed, "error", err)
		}
		if missed < strikes || ctx.Err() != nil {
			continue
		}
		dump := filepath.Join(dumpDir, "ferretdb-wedged-"+time.Now().UTC().Format("20060102T150405Z")+".goroutines")
		if f, err := os.Create(dump); err == nil {
			_ = pprof.Lookup("goroutine").WriteTo(f, 2)
			_ = f.Close()
		}
		logger.Error("watchdog: FerretDB stopped answering; restarting it", "goroutine_dump", dump)
		self, err := os.Executable()
		if err == nil {
			err = syscall.Exec(self, os.Args, os.Environ())
		}
		fmt.Fprintf(os.Stderr, "ferretdb-launcher: watchdog could not restart: %v\n", err)
		os.Exit(3)
	}
}

// ping sends {ping: 1, $db: "admin"} as an OP_MSG and waits for any reply.
func ping(addr string, timeout time.Duration) error {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err = conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err = conn.Write(pingMessage()); err != nil {
		return err
	}
	header := make([]byte, 16)
	if _, err = io.ReadFull(conn, header); err != nil {
		return err
	}
	length := binary.LittleEndian.Uint32(header)
	if length < 16 || length > 1<<20 {
		return fmt.Errorf("reply of %d bytes", length)
	}
	_, err = io.CopyN(io.Discard, conn, int64(length-16))
	return err
}

func pingMessage() []byte {
	le := binary.LittleEndian
	doc := []byte{0, 0, 0, 0}
	doc = append(doc, 0x10) // int32 element
	doc = append(doc, "ping\x00"...)
	doc = le.AppendUint32(doc, 1)
	doc = append(doc, 0x02) // string element
	doc = append(doc, "$db\x00"...)
	doc = le.AppendUint32(doc, uint32(len("admin")+1))
	doc = append(doc, "admin\x00"...)
	doc = append(doc, 0)
	le.PutUint32(doc, uint32(len(doc)))

	msg := make([]byte, 16, 16+4+1+len(doc))
	msg = le.AppendUint32(msg, 0) // flag bits
	msg = append(msg, 0)          // section kind 0: the body
	msg = append(msg, doc...)
	le.PutUint32(msg[0:], uint32(len(msg)))
	le.PutUint32(msg[4:], 1)     // request id
	le.PutUint32(msg[12:], 2013) // OP_MSG
	return msg
}
