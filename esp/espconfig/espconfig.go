// Package espconfig maps the config's esp section onto the esp package's options (base-URL overrides, API
// revisions, per-platform rate limits), so the API and the worker treat every platform alike. esp itself
// does not import config.
package espconfig

import (
	"github.com/autofloss/autofloss/config"
	"github.com/autofloss/autofloss/esp"
)

// Options returns the adapter options and the shared client's options for the config's esp section.
func Options(c config.ESP) (esp.Options, esp.ClientOptions) {
	o := esp.Options{BaseURLs: map[string]string{}, Revisions: map[string]string{}}
	co := esp.ClientOptions{RequestTimeout: c.Timeout, Limits: map[string]esp.Limits{}}
	if c.MaxRetries > 0 {
		co.Retry.MaxAttempts = c.MaxRetries + 1
	}
	co.Retry.BaseDelay = c.RetryBaseDelay
	reg := esp.Platforms()
	for slug, p := range c.Platforms {
		if p.BaseURL != "" {
			o.BaseURLs[slug] = p.BaseURL
		}
		if p.Revision != "" {
			o.Revisions[slug] = p.Revision
		}
		if p.RatePerSecond > 0 || p.Burst > 0 {
			def, _ := reg.Lookup(slug)
			l := def.Limits
			if p.RatePerSecond > 0 {
				l.Rate = p.RatePerSecond
			}
			if p.Burst > 0 {
				l.Burst = p.Burst
			}
			co.Limits[slug] = l
		}
	}
	return o, co
}
