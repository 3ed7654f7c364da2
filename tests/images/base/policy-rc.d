#!/bin/sh
# Package installs must not start daemons inside an image build.
exit 101
