// Package mail implements commands.Mailer for the transports DASHTAM_MAIL_URL
// names: smtp:// and smtps:// deliver through a real SMTP client
// (github.com/wneessen/go-mail), and file:// writes one RFC 5322 .eml file per
// message into an outbox directory, so a developer without a mail server can
// still open a verification link. Both transports build the message the same
// way, so what lands in the outbox is byte for byte what SMTP would send.
package mail
