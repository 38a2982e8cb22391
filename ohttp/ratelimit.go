package ohttp

// Limiter decides whether the request of a key (a client, an address) may
// proceed now. The relay asks it once per request. The provider's token
// buckets (directory.TokenBuckets) implement it.
type Limiter interface {
	Allow(key string) bool
}
