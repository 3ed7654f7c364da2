#!/usr/bin/env bash
# Fetches the Apache IoTDB ConfigNode and DataNode jars, with every runtime
# dependency, from Maven Central into the test cache. Safe to run again.
# 2.0.1-beta is the newest release whose whole dependency tree (parent POMs
# included) resolves from the Maven Central mirror that CI can reach.
set -euo pipefail

version="${IOTDB_VERSION:-2.0.1-beta}"
cache="${IOTSTACK_TEST_CACHE:-$HOME/.cache/iotstack-test}"
target="$cache/iotdb-$version"
marker="$target/.complete"

if [[ -f "$marker" ]]; then
    echo "IoTDB $version jars already in $target/lib"
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A throw-away project whose only purpose is to name the two server artifacts.
cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>iotstack.test</groupId>
  <artifactId>iotdb-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.iotdb</groupId>
      <artifactId>iotdb-server</artifactId>
      <version>$version</version>
    </dependency>
    <dependency>
      <groupId>org.apache.iotdb</groupId>
      <artifactId>iotdb-confignode</artifactId>
      <version>$version</version>
    </dependency>
  </dependencies>
</project>
POM

rm -rf "$target"
mkdir -p "$target"
mvn -B -q -f "$work/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
    -DincludeScope=runtime \
    -DoutputDirectory="$target/lib"

echo "$version" >"$marker"
echo "IoTDB $version: $(ls "$target/lib" | wc -l) jars in $target/lib"
