#!/usr/bin/env bash
# Spark's S3A connector for the object-store test (tests/test_object_store.py), into $1.
#
# Spark reads s3a:// through hadoop-aws + the AWS SDK, which pyspark does not ship. In
# production put them on Spark's classpath the usual way ([spark.conf] "spark.jars.packages" =
# "org.apache.hadoop:hadoop-aws:3.4.2", matching pyspark 4.1's Hadoop 3.4.2, or the cluster's
# image). This machine cannot reach Maven Central, so the test takes hadoop-aws 3.3.1 and the
# AWS SDK bundle 1.11.901 from PyPI's sagemaker_pyspark 1.4.5 sdist (the only PyPI source
# found); the test's config adds the settings that older connector needs (see the test). Every
# file is checked against its sha256.
set -euo pipefail
dest=${1:?usage: fetch_s3a_test_jars.sh DEST_DIR}
py=${PYTHON:-python3}
sdist=sagemaker_pyspark-1.4.5.tar.gz
declare -A sha=(
  [$sdist]=05ca2d5081d7138ce29a8fb0a9cba077f28c825288ed07aed46a82e63c0bf1fb
  [hadoop-aws-3.3.1.jar]=6be50ad8a8b445d2802381b085b2a3ede5c29d353450a6a21f16b2fefa962b6e
  [aws-java-sdk-bundle-1.11.901.jar]=b87175b32a16544cc1b37cf40390eb375833e62bed67f8ce6cde4b7ad6429ead
)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: -d "$tmp" sagemaker_pyspark==1.4.5
echo "${sha[$sdist]}  $tmp/$sdist" | sha256sum -c --quiet
mkdir -p "$dest"
for jar in hadoop-aws-3.3.1.jar aws-java-sdk-bundle-1.11.901.jar; do
  tar -xzf "$tmp/$sdist" -C "$tmp" "sagemaker_pyspark-1.4.5/deps/jars/$jar"
  echo "${sha[$jar]}  $tmp/sagemaker_pyspark-1.4.5/deps/jars/$jar" | sha256sum -c --quiet
  mv "$tmp/sagemaker_pyspark-1.4.5/deps/jars/$jar" "$dest/$jar"
done
touch "$dest/.fetched"
echo "S3A test jars in $dest"
