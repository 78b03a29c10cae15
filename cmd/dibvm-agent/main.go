// Command dibvm-agent is the guest agent: PID 1 of dibvm's helper VM.
// It is built for Linux only and embedded in the dibvm host binary.
package main

import (
	"log"
	"os"
	"time"

	"github.com/dibvm/dibvm/guestagent"
	"github.com/dibvm/dibvm/guestagent/sysinit"
)

func main() {
	if os.Getpid() != 1 {
		log.Fatal("dibvm-agent runs as PID 1 of dibvm's helper VM; it is not a command to run by hand")
	}
	err := guestagent.Run()
	log.Printf("fatal: %v", err)
	// Give the console a moment, then stop the machine: the host sees the
	// VM exit and shows the console's last lines, this one among them.
	time.Sleep(100 * time.Millisecond)
	sysinit.Poweroff()
}
