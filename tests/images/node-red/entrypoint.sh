#!/bin/bash
# Same start as the package's `npm start`: node-red with /data as user folder
# and $FLOWS as flows file; extra arguments go to node-red. Signals reach node
# directly because exec replaces this shell.
set -e
exec /usr/local/bin/node $NODE_OPTIONS node_modules/node-red/red.js \
    --userDir /data "$FLOWS" "$@"
