#!/usr/bin/env bash
# Vendors Apache ECharts (the experiments page's charts) into web/static/vendor/ from the npm registry:
# dist/echarts.min.js and its LICENSE (Apache-2.0), at the pinned version, checked against the
# registry's integrity hash. No CDN at run time: Airflow installations often have no internet.
# Usage: flow_airflow/web/static/vendor.sh   (needs npm; writes vendor/echarts.min.js, vendor/ECHARTS-LICENSE)
set -euo pipefail
VERSION=6.1.0
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "echarts@${VERSION}" >/dev/null
tar -xzf "echarts-${VERSION}.tgz"
mkdir -p "$here/vendor"
cp package/dist/echarts.min.js "$here/vendor/echarts.min.js"
cp package/LICENSE "$here/vendor/ECHARTS-LICENSE"
cp package/NOTICE "$here/vendor/ECHARTS-NOTICE"
cp package/licenses/LICENSE-d3 "$here/vendor/ECHARTS-LICENSE-d3"  # code ECharts took from d3
echo "vendored echarts ${VERSION} into $here/vendor"
