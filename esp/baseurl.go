package esp

import "strings"

// baseURL is the adapter's base URL: def (the platform's real one), or the operator's override
// (cfg.BaseURL, without trailing slashes) when set. Adapters start with `base := cfg.baseURL(xBase)`.
func (c Config) baseURL(def string) string {
	if c.BaseURL != "" {
		return strings.TrimRight(c.BaseURL, "/")
	}
	return def
}
