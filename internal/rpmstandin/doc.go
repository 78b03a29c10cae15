// Package rpmstandin is test support: it builds, signs and serves rpm-md
// repositories shaped like the rpm distributions' (CentOS Stream's BaseOS,
// Fedora's and openSUSE Leap's) for dibvm's tests of DIB's rpm-family
// elements.
//
// Those distributions' mirrors cannot be reached from where the tests
// run, so the tests build a stand-in: real rpms made by the host's
// rpmbuild, signed by rpmsign with a key the test generates, indexed by
// createrepo_c, with the repository metadata signed too, and served on
// the loopback. The rpms hold Debian's packages (fetched and checked
// by vmimage/debrepo), as the Ubuntu stand-in's archive holds Debian's
// packages under Ubuntu's names. Nothing here runs a package's
// scriptlets or installs anything on the host.
package rpmstandin
