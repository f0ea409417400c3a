// The real node's pod sandbox image (registry.k8s.io/pause can't be pulled here): it sleeps until
// SIGTERM or SIGINT and exits 0, which is all a sandbox's process has to do.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
	os.Exit(0)
}
