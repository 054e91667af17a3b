package cli

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// Profile environment variables of `iotgw run`, for the benchmark harness (bench/)
// and for profiling a gateway in the field. Each names a file written when the
// gateway stops: IOTGW_CPUPROFILE (CPU, sampled from the start),
// IOTGW_MEMPROFILE (allocations), IOTGW_MUTEXPROFILE and IOTGW_BLOCKPROFILE
// (contention; setting them turns the sampling on, which costs a little CPU).
const (
	envCPUProfile   = "IOTGW_CPUPROFILE"
	envMemProfile   = "IOTGW_MEMPROFILE"
	envMutexProfile = "IOTGW_MUTEXPROFILE"
	envBlockProfile = "IOTGW_BLOCKPROFILE"
)

// startProfiles starts what the profile variables ask for and returns the function
// that writes the profiles; problems are reported on stderr and never stop the
// gateway.
func startProfiles(e env) func() {
	cpuPath := e.getenv(envCPUProfile)
	memPath := e.getenv(envMemProfile)
	mutexPath := e.getenv(envMutexProfile)
	blockPath := e.getenv(envBlockProfile)
	if cpuPath == "" && memPath == "" && mutexPath == "" && blockPath == "" {
		return func() {}
	}
	var cpuFile *os.File
	if cpuPath != "" {
		f, err := os.Create(cpuPath)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "iotgw: %s: %v\n", envCPUProfile, err)
		} else {
			cpuFile = f
		}
	}
	if mutexPath != "" {
		runtime.SetMutexProfileFraction(10)
	}
	if blockPath != "" {
		// one sample per 10 µs blocked
		runtime.SetBlockProfileRate(10_000)
	}
	return func() {
		if cpuFile != nil {
			pprof.StopCPUProfile()
			_ = cpuFile.Close()
		}
		for _, p := range []struct{ env, path, name string }{
			{envMemProfile, memPath, "allocs"}, {envMutexProfile, mutexPath, "mutex"}, {envBlockProfile, blockPath, "block"},
		} {
			if p.path == "" {
				continue
			}
			if err := writeProfile(p.name, p.path); err != nil {
				fmt.Fprintf(e.stderr, "iotgw: %s: %v\n", p.env, err)
			}
		}
	}
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
