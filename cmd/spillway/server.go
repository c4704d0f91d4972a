package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"spillway/client"
)

// serverFlags are how every command finds and authenticates to the
// server (push may also take its URL as its last argument).
type serverFlags struct {
	url    string
	token  string
	awsIAM bool
	region string
}

func (s *serverFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.url, "url", "", "the server's URL (default: env SPILLWAY_URL)")
	// The token's default is read after parsing, so that -help never
	// prints it.
	fs.StringVar(&s.token, "token", "", "bearer token for the server (default: env SPILLWAY_TOKEN)")
	fs.BoolVar(&s.awsIAM, "aws-iam", false, "sign requests with SigV4, for a Function URL with auth type AWS_IAM (credentials from the AWS SDK's usual sources)")
	fs.StringVar(&s.region, "region", "", "AWS region for --aws-iam (default: from a *.lambda-url.REGION.on.aws URL, else the SDK's)")
}

// resolve fills what the command line left out from the environment.
func (s *serverFlags) resolve(getenv func(string) string) error {
	if s.url == "" {
		s.url = getenv("SPILLWAY_URL")
	}
	if s.token == "" {
		s.token = getenv("SPILLWAY_TOKEN")
	}
	switch {
	case s.url == "":
		return errors.New("no server: give --url or set SPILLWAY_URL")
	case s.awsIAM && s.token != "":
		return errors.New("--aws-iam and a token both need the Authorization header; unset one (SPILLWAY_TOKEN too)")
	}
	return nil
}

// client returns a client for the server, or prints why there is none.
func (s *serverFlags) client(ctx context.Context, cmd string, stderr io.Writer) (*client.Client, bool) {
	opts := client.Options{Token: s.token, NoResume: true}
	if s.awsIAM {
		signer, err := sigV4(ctx, *s)
		if err != nil {
			fmt.Fprintf(stderr, "spillway %s: --aws-iam: %v\n", cmd, err)
			return nil, false
		}
		opts.Signer = signer
	}
	c, err := client.New(s.url, opts)
	if err != nil {
		fmt.Fprintf(stderr, "spillway %s: %v\n", cmd, err)
		return nil, false
	}
	return c, true
}

// parseArgs parses a command's flags, which may come after its arguments
// too, as people type them, and returns the arguments.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// newFlagSet is a command's flag set, whose usage prints usage and then
// the flags.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		// Flags without a usage line are for tests: print the others.
		shown := flag.NewFlagSet(name, flag.ContinueOnError)
		shown.SetOutput(stderr)
		fs.VisitAll(func(f *flag.Flag) {
			if f.Usage != "" {
				shown.Var(f.Value, f.Name, f.Usage)
			}
		})
		shown.PrintDefaults()
	}
	return fs
}

// usageError prints a command's usage error and returns its status.
func usageError(stderr io.Writer, cmd string, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintf(stderr, "spillway %s: %v (spillway %s -h for help)\n", cmd, err, cmd)
	return exitUsage
}

// pushTarget splits push's arguments into the sources and the server's
// URL: the last argument when it is an http:// or https:// URL, which
// wins over SPILLWAY_URL as a flag would; else --url, else SPILLWAY_URL.
func pushTarget(pos []string, flagURL string, getenv func(string) string) (sources []string, serverURL string, err error) {
	last := ""
	if len(pos) > 0 {
		last = pos[len(pos)-1]
	}
	trailing := strings.HasPrefix(last, "http://") || strings.HasPrefix(last, "https://")
	switch {
	case trailing && flagURL != "":
		return nil, "", errors.New("give the server once: --url or the last argument")
	case trailing:
		sources, serverURL = pos[:len(pos)-1], last
	case flagURL != "":
		sources, serverURL = pos, flagURL
	default:
		sources, serverURL = pos, getenv("SPILLWAY_URL")
	}
	switch {
	case serverURL == "":
		return nil, "", errors.New("want at least one FILE or DIR and the server: a last argument URL, --url or SPILLWAY_URL")
	case len(sources) == 0:
		return nil, "", errors.New("want at least one FILE or DIR and the server URL")
	}
	return sources, serverURL, nil
}
