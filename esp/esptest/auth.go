package esptest

import "net/http"

// secretCredentials is the Spec.Credentials of a platform with one credential: {key: prefix + the
// fake's secret} when good, {key: bad} (well-formed, but not the account's) otherwise.
func secretCredentials(key, prefix, bad string) func(*Fake, bool) map[string]string {
	return func(f *Fake, good bool) map[string]string {
		if good {
			return map[string]string{key: prefix + f.Secret()}
		}
		return map[string]string{key: bad}
	}
}

// headerSecret is the Spec.Authorized of a platform that takes its key in one header: the header must be
// prefix + the fake's secret (e.g. headerSecret("Authorization", "Bearer ")).
func headerSecret(header, prefix string) func(*Fake, *http.Request) bool {
	return func(f *Fake, r *http.Request) bool { return r.Header.Get(header) == prefix+f.Secret() }
}
