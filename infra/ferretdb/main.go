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
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

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

	err = f.Run(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "ferretdb-launcher: %v\n", err)
		os.Exit(1)
	}
	logger.Warn("ferretdb-launcher stopped")
}
