// Package schwab is the Charles Schwab Trader API adapter of
// commands.Provider: OAuth 2.0 authorisation-code grant through
// golang.org/x/oauth2, and the account, position and transaction calls of a
// sync, mapped from Schwab's JSON dialect into the port's vocabulary.
// Package schwabtest is a fake of the same API over real HTTP.
//
// Facts of the dialect the adapter is built around:
//
//   - The authorisation code reaches the callback URL-encoded (it ends in
//     "%40", an encoded "@", and its base64 part may hold "+" and "/").
//     Decoding happens exactly once, where the callback parses its query
//     string (net/url's Query); Exchange takes that decoded value and hands
//     it to golang.org/x/oauth2, which form-encodes it for the token request
//     and Schwab decodes it once more on its side. Exchange never unescapes:
//     a second decode would turn a "+" into a space and spoil the code.
//   - The access token lives 30 minutes; the refresh token lives seven days
//     from the original code exchange, and refreshing does not extend it, so
//     Exchange sets Credentials.RefreshExpiresAt and Refresh carries it over.
//     Whatever refresh token a refresh answers is stored (whether Schwab
//     rotates it is not settled).
//   - Schwab addresses accounts in URLs by an opaque hash, never by number.
//     The adapter exposes neither: ProviderAccount.ID is "schwab-" and 32 hex
//     digits of HMAC-SHA-256(Config.AccountIDKey, account number). A plain
//     hash of an eight-digit number would be reversed by trying all 10^8
//     numbers in a second, and the id is stored in plaintext in immutable
//     events; the key keeps the number out of them. The hash Schwab wants is
//     looked up (GET /accounts/accountNumbers) on every account-scoped call,
//     so no state lives in the adapter and a vanished account is reported as
//     not found before any data call.
//   - The transaction search answers at most 3000 records and spans at most
//     one year: Transactions splits the range into windows of at most 365
//     days, splits a window that comes back full into halves until none is
//     full, and removes duplicates by activityId.
//   - Transactions whose status is INVALID (cancelled or reversed at Schwab)
//     are skipped, so that a sync sees them as gone; PENDING ones are
//     reported with Pending set.
//   - Full account numbers are masked ("****1234") in every Raw record the
//     adapter returns, wherever they appear in it.
package schwab
