// Package password owns how Dashtam stores and accepts passwords: argon2id
// hashing at OWASP's parameters through github.com/alexedwards/argon2id (a
// well-kept library, so the PHC string encoding is not hand-rolled), with
// rehash-on-login when the parameters move, and the NIST SP 800-63B policy
// for new passwords: 12–128 characters, not a commonly used password, no
// composition rules.
//
// Passwords are NFKC-normalised before they are counted, compared or hashed
// (SP 800-63B §5.1.1.2), so the same password typed on two keyboards that
// compose accents differently still matches.
package password
