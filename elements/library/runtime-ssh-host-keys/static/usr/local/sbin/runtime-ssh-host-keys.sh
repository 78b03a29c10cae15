#!/bin/sh
# Make every host key type this OpenSSH supports that is missing. DSA is
# not among them since OpenSSH 10, so naming types would fail there.
set -eu
ssh-keygen -A
