// Command fakerie stands in for aws-lambda-rie in StartRIE's tests. It
// listens on its invoke address first, and binds its runtime API address
// only after the invoke address has had a connection (StartRIE's probe):
// the real emulator binds the two side by side, so a runtime API port
// taken by another process can fail it after its invoke API answered.
// Failing to bind, it exits 2, as the emulator panics; else it answers
// every invocation with null.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	invoke := flag.String("runtime-interface-emulator-address", "", "the invoke API's address")
	runtimeAPI := flag.String("runtime-api-address", "", "the runtime API's address")
	flag.Parse()
	ln, err := net.Listen("tcp", *invoke)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakerie: invoke API:", err)
		os.Exit(2)
	}
	probe, err := ln.Accept()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakerie: invoke API:", err)
		os.Exit(2)
	}
	probe.Close()
	rl, err := net.Listen("tcp", *runtimeAPI)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakerie: runtime API failed to listen:", err)
		os.Exit(2)
	}
	defer rl.Close()
	err = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("null"))
	}))
	fmt.Fprintln(os.Stderr, "fakerie:", err)
	os.Exit(1)
}
