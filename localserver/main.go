// Command localserver is Spillway's development server: the same upload API
// as the deployed function, served with net/http, spooling bodies to a local
// directory and storing files in another. With --function it is the local
// Function URL emulator instead (see cmd/funcurl).
package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"spillway/api"
	"spillway/apierr"
	"spillway/internal/buildinfo"
	"spillway/internal/config"
	"spillway/internal/emulator"
	"spillway/internal/hook"
	"spillway/internal/jwtauth"
	"spillway/internal/serve"
	"spillway/metrics/prom"
	"spillway/spool"
	"spillway/store"
	"spillway/store/dirstore"
	"spillway/store/s3store"
	"spillway/store/s3store/s3config"
)

func main() { serve.Main("localserver", run) }

// run serves until ctx is cancelled. ready, when not nil, receives the
// address the server listens on.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready chan<- string) error {
	cfg, err := config.Parse(config.Server, args, getenv, stderr)
	if err != nil {
		return err
	}
	serve.LimitMemory(getenv, cfg.MemoryBudget)
	if cfg.Function != "" {
		return emulator.Run(ctx, cfg, stderr, ready)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))

	if cfg.Bucket == "" {
		// Before the sweep, and before either directory is made.
		if err := cfg.CheckDirs(); err != nil {
			return err
		}
	}
	spooler, swept, err := cfg.Spooler(cfg.MaxUploadSize, log)
	if err != nil {
		return err
	}
	st, staged, err := openStore(ctx, cfg, getenv, spooler)
	if err != nil {
		return err
	}
	metrics := prom.New(spooler)
	metrics.Swept(swept + staged)
	bi := buildinfo.Read()
	var auth api.Authenticator
	if cfg.JWKSURL != "" {
		v, err := jwtauth.New(ctx, jwtauth.Config{JWKSURL: cfg.JWKSURL, Issuer: cfg.JWTIssuer,
			Audience: cfg.JWTAudience, SpaceClaim: cfg.UserPrefixClaim})
		if err != nil {
			return err
		}
		auth = v
	}
	maxListings := cfg.MaxListings
	if maxListings == 0 {
		maxListings = -1 // no cap, as for uploads
	}
	handler := api.New(api.Config{
		Spooler:               spooler,
		Store:                 st,
		Logger:                log,
		ReadTimeout:           cfg.ReadTimeout,
		MaxConcurrentUploads:  cfg.MaxUploads,
		MaxConcurrentListings: maxListings,
		Token:                 cfg.Token,
		Authenticator:         auth,
		UserQuota:             cfg.UserQuota,
		Observer:              metrics,
		Metrics:               metrics.Handler(),
		MetricsPublic:         cfg.MetricsPublic,
		UploadSecret:          []byte(cfg.UploadSecret),
		Retention:             cfg.Retention,
		Version:               bi.Version,
		Revision:              bi.Revision,
		Hooks:                 hooks(cfg),
		AllowTypes:            cfg.AllowTypes,
	})

	// The directory store's housekeeping: abandoned uploads and, with
	// --retention, expired files. S3 does its own, by lifecycle rules.
	sweepCtx, stopSweeps := context.WithCancel(ctx)
	defer stopSweeps()
	sweeps := func() {}
	if ds, ok := st.(*dirstore.Store); ok {
		sweeps = serve.Every(sweepCtx, sweepEvery(cfg.Retention), func(ctx context.Context) {
			sw, err := ds.Sweep(ctx)
			metrics.Expired(sw.Expired)
			if err != nil && ctx.Err() == nil {
				log.Warn("sweep failed", "error", err, "expired_removed", sw.Expired, "uploads_removed", sw.Uploads)
				return
			}
			level := slog.LevelDebug
			if sw.Expired+sw.Uploads > 0 {
				level = slog.LevelInfo
			}
			log.Log(ctx, level, "swept", "expired_removed", sw.Expired, "uploads_removed", sw.Uploads, "retention", cfg.Retention)
		})
	} else if cfg.Retention > 0 {
		log.Info("--retention with --bucket: S3 removes expired files only if the bucket has a lifecycle rule that expires them (template.yaml sets one); the listing gives their expiry")
	}

	err = serve.Run(ctx, serve.Config{
		Addr:            cfg.Addr,
		Handler:         handler,
		Logger:          log,
		Refuse:          func(w http.ResponseWriter, r *http.Request) { handler.Refuse(w, r, apierr.ErrUnavailable) },
		AbortCause:      apierr.ErrUnavailable,
		CORSOrigins:     cfg.CORSOrigins,
		MaxConnections:  cfg.MaxConnections,
		MaxUploads:      cfg.MaxUploads,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Listening: func(l serve.Listening) {
			// Only a server that checks no token at all is open to anyone.
			guard := cfg.Token
			if guard == "" {
				guard = cfg.JWKSURL
			}
			l.Log(log, guard, "config", cfg, "orphans_swept", swept+staged, "store", st.Capabilities())
			if st.Capabilities().PartWriter != nil && cfg.UploadSecret == "" {
				// api.New made the random key.
				log.Info("no --upload-secret: part URLs of multipart uploads are signed with a random key and stop working when the server restarts")
			}
			if ready != nil {
				ready <- l.Addr.String()
			}
		},
	})
	stopSweeps()
	sweeps()
	if err != nil {
		return err
	}
	serve.Stopped(log, spooler.Stats())
	return nil
}

// sweepEvery is how often the directory store is swept: every ten
// minutes, or every tenth of a shorter retention (a second at least), so
// that a file outlives its expiry by about that much at most.
func sweepEvery(retention time.Duration) time.Duration {
	every := 10 * time.Minute
	if r := retention / 10; r > 0 && r < every {
		every = max(r, time.Second)
	}
	return every
}

// hooks is the hook client of --hook-url, or nil without one.
func hooks(cfg config.Config) api.Hooks {
	if cfg.HookURL == "" {
		return nil
	}
	return hook.New(hook.Config{URL: cfg.HookURL, Secret: []byte(cfg.HookSecret)})
}

// openStore opens the directory store, or the S3 store with --bucket. It
// returns how many orphaned staging files it removed.
// The directory store's copies borrow the spool's working buffers, so that
// they count against the memory budget.
func openStore(ctx context.Context, cfg config.Config, getenv func(string) string, spooler *spool.Spooler) (store.Store, int, error) {
	if cfg.Bucket == "" {
		st, staged, err := dirstore.Open(cfg.Directory, dirstore.Options{Overwrite: cfg.Overwrite, Fsync: cfg.Fsync,
			FileMode: cfg.FileMode, CaseSensitiveNames: cfg.CaseSensitiveNames, MaxOpenUploads: cfg.MaxOpenUploads,
			Retention: cfg.Retention, Buffers: spooler.Buffer})
		if err != nil {
			return nil, 0, err
		}
		// The root stays open for the life of the process.
		return st, staged, nil
	}
	client, err := s3config.NewClient(ctx, s3store.EndpointSet(getenv))
	if err != nil {
		return nil, 0, err
	}
	return s3store.New(client, cfg.Bucket, s3store.Options{Prefix: cfg.Prefix, Overwrite: cfg.Overwrite}), 0, nil
}
