// Package webhook sends webhook deliveries (commands/webhooks' Sender and
// URLPolicy): Standard Webhooks signatures, an HTTP client that dials only
// public addresses — checked on the address actually dialled, after DNS,
// so a name that resolves to a public address at registration and to
// 169.254.169.254 at delivery (DNS rebinding) is still refused — that
// follows no redirect and gives up after the delivery timeout.
package webhook

import (
	"net/netip"
)

// blockedPrefixes are the ranges a delivery may never reach unless private
// addresses are allowed: this host, private networks, link-local (which
// holds the cloud metadata service, 169.254.169.254 and fd00:ec2::254 in
// unique-local), carrier-grade NAT, and the special-purpose ranges of
// RFC 6890 that route nowhere public.
var blockedPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this network"
		"10.0.0.0/8",      // private
		"100.64.0.0/10",   // carrier-grade NAT
		"127.0.0.0/8",     // loopback
		"169.254.0.0/16",  // link-local, cloud metadata
		"172.16.0.0/12",   // private
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation
		"192.88.99.0/24",  // 6to4 relay anycast
		"192.168.0.0/16",  // private
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation
		"203.0.113.0/24",  // documentation
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, broadcast
		"::/128",          // unspecified
		"::1/128",         // loopback
		"64:ff9b:1::/48",  // local-use NAT64
		"100::/64",        // discard
		"2001::/23",       // IETF protocol assignments
		"2001:db8::/32",   // documentation
		"2002::/16",       // 6to4: embeds an IPv4 address
		"fc00::/7",        // unique-local (fd00:ec2::254 is a metadata service)
		"fe80::/10",       // link-local
		"fec0::/10",       // site-local, deprecated
		"ff00::/8",        // multicast
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// nat64 embeds an IPv4 address in its last 32 bits.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Blocked reports whether a delivery must not reach a: an address in one
// of the blocked ranges, including an IPv4 one written as IPv4-mapped or
// NAT64 IPv6, which would reach the same host.
func Blocked(a netip.Addr) bool {
	if !a.IsValid() {
		return true
	}
	a = a.Unmap()
	if a.Is6() && nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	if a.Zone() != "" {
		return true // a scoped address is link-local by nature
	}
	for _, p := range blockedPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
