package config_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/autofloss/autofloss/config"
)

// TestHostPortsEnv: AUTOFLOSS_VERIFY_HOST_PORTS fills verify.HostPorts; a malformed entry names the variable.
func TestHostPortsEnv(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want map[string]int
		err  string
	}{
		{"", nil, ""},
		{"mx.good.test=2525, mx.b.test=2526", map[string]int{"mx.good.test": 2525, "mx.b.test": 2526}, ""},
		{"mx.good.test:2525", nil, config.EnvHostPorts},
		{"mx.good.test=0", nil, config.EnvHostPorts},
	} {
		cfg, err := config.Load("/nonexistent/config.yaml", envOf(map[string]string{config.EnvHostPorts: tc.raw}))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one naming %s", tc.raw, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tc.raw, err)
		}
		if len(tc.want) == 0 && len(cfg.Verify.HostPorts) == 0 {
			continue
		}
		if !reflect.DeepEqual(cfg.Verify.HostPorts, tc.want) {
			t.Errorf("%q: %v, want %v", tc.raw, cfg.Verify.HostPorts, tc.want)
		}
	}
}
