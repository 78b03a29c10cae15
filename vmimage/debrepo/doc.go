// Package debrepo is a small client for Debian package repositories.
//
// It fetches a suite's InRelease, checks its OpenPGP signature against
// Debian's archive keys (shipped in this package), and then trusts each file
// it downloads only through the chain of SHA256 sums that starts there:
// InRelease vouches for Packages, Packages vouches for each .deb. It resolves
// a package set with its dependencies and unpacks packages' data archives.
//
// It does what the helper appliance needs, no more: no apt configuration,
// no maintainer scripts, one architecture and one component at a time.
package debrepo
