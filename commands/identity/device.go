package identity

import "strings"

// Device names a User-Agent for people, e.g. "Firefox on Linux", so a
// session list can be read at a glance; an unrecognised agent is named by
// its first product token, and an empty one "Unknown device". It is a
// label, never a security decision, so a short table beats a dependency.
func Device(userAgent string) string {
	ua := strings.TrimSpace(userAgent)
	if ua == "" {
		return "Unknown device"
	}
	browser := match(ua, []pair{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"Chrome/", "Chrome"},
		{"Safari/", "Safari"}, {"curl/", "curl"}, {"Wget/", "Wget"}, {"python-requests", "Python requests"},
		{"Go-http-client", "Go HTTP client"}, {"PostmanRuntime", "Postman"},
	})
	system := match(ua, []pair{
		{"iPhone", "iOS"}, {"iPad", "iPadOS"}, {"Android", "Android"}, {"Windows", "Windows"},
		{"Mac OS X", "macOS"}, {"Macintosh", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"},
	})
	switch {
	case browser != "" && system != "":
		return browser + " on " + system
	case browser != "":
		return browser
	case system != "":
		return "Unknown browser on " + system
	}
	name, _, _ := strings.Cut(ua, "/")
	name, _, _ = strings.Cut(name, " ")
	if len(name) > 40 {
		name = name[:40]
	}
	return name
}

type pair struct{ needle, name string }

// match returns the name of the first pair whose needle ua contains; order
// matters, because Chrome's agent names Safari and Edge's names Chrome.
func match(ua string, pairs []pair) string {
	for _, p := range pairs {
		if strings.Contains(ua, p.needle) {
			return p.name
		}
	}
	return ""
}
