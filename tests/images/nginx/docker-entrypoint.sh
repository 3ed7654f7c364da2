#!/bin/sh
# Before nginx starts: fill /etc/nginx/templates/*.template from the
# environment into /etc/nginx/conf.d, then run /docker-entrypoint.d/*.sh.
set -e

if [ "$1" = "nginx" ] || [ "$1" = "nginx-debug" ]; then
    templates=/etc/nginx/templates
    output="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
    suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
    if [ -d "$templates" ]; then
        # Only variables that are set are replaced, so nginx's own $vars stay.
        defined="$(env | cut -d= -f1 | sed 's/^/$/' | tr '\n' ' ')"
        find "$templates" -type f -name "*$suffix" | while read -r template; do
            relative="${template#"$templates"/}"
            target="$output/${relative%"$suffix"}"
            mkdir -p "$(dirname "$target")"
            envsubst "$defined" <"$template" >"$target"
            echo "docker-entrypoint.sh: $template -> $target"
        done
    fi

    for script in /docker-entrypoint.d/*.sh; do
        [ -x "$script" ] && "$script"
    done
fi

exec "$@"
