package funcurl

import "syscall"

// dieWithParent has the kernel SIGKILL the emulator when this process dies,
// even by SIGKILL, so no emulator outlives its server. (The signal follows
// the thread that started the child; Go ends a thread only when a goroutine
// locked to it exits, and nothing here locks one.) The function dies with
// the emulator: its next call to the runtime API fails, and the Lambda
// runtime exits.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
