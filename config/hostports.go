package config

import (
	"fmt"
	"strconv"
	"strings"
)

// EnvHostPorts sets verify.HostPorts, which has no YAML key (`serve -sandbox` sets it at run time): a
// comma-separated list of exchanger=port, e.g. AUTOFLOSS_VERIFY_HOST_PORTS=mx.good.test=2525,mx.b.test=2526.
// It lets a separately started worker process (the reliability tests' child worker, a staging setup) probe
// a loopback mail world the way the sandbox's in-process engine does.
const EnvHostPorts = "AUTOFLOSS_VERIFY_HOST_PORTS"

func applyHostPortsEnv(cfg *Config, getenv func(string) string) error {
	raw := getenv(EnvHostPorts)
	if raw == "" {
		return nil
	}
	hp := map[string]int{}
	for _, part := range strings.Split(raw, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		host, port, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(port)
		if !ok || host == "" || err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("config: verify.host_ports (%s): each entry must be host=port, got %q", EnvHostPorts, part)
		}
		hp[host] = n
	}
	cfg.Verify.HostPorts = hp
	return nil
}
