// Package providers holds the adapters of commands.Provider, one
// subpackage per institution (schwab, sandbox), each talking to its
// institution over HTTP in the institution's own dialect, and the contract
// test suite every adapter passes (providertest).
package providers
