#!/usr/bin/env bash
# Rebuild every bundled trace in simulations/traces/ from the public raw files in RAW_DIR
# (see simulations/README.md for where each comes from) and from the seeded scenarios.
# The output is byte-for-byte reproducible (seeded draws, gzip without timestamps).
#
#   simulations/build_traces.sh RAW_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
raw=${1:?usage: simulations/build_traces.sh RAW_DIR}
out=simulations/traces
run() { "${PYTHON:-python3}" -m autoscaler "$@"; }

run trace import nasa-http "$raw/nasa-http-1995-per-second.tbz2" --day 12 --days 1 \
  --out "$out/nasa_http_day.csv.gz"
run trace import azure-llm \
  "$raw/AzureLLMInferenceTrace_code.csv=gift_card_exchange:0.1" \
  "$raw/AzureLLMInferenceTrace_conv.csv=wechat-message" \
  --out "$out/azure_llm_bursts.csv.gz"
run trace import swf "$raw/NASA-iPSC-1993-3.1-cln.swf.gz" --from-day 17 --days 20 --compress 20 \
  --out "$out/nasa_ipsc_batch.csv.gz"
run trace import azure-functions \
  "$raw/AzureFunctions2019-invitro-500-invocations.csv" \
  "$raw/AzureFunctions2019-invitro-500-durations.csv" \
  --trigger http=card_query:0.08 --trigger timer=mail:0.08 --trigger queue=default:0.04 \
  --source "Files: vhive-serverless/invitro data/traces/500/{invocations,durations}.csv (MIT), \
commit 163911a8 (branch parse_dandelion_response): 500 functions of the Azure trace, minutes \
480-959 of one day, as invitro sampled them." \
  --out "$out/azure_functions_2019.csv.gz"
run trace import access-log "$raw/wc_day6_1_sample.tar.bz2" --compress 6 \
  --class page=card_query:1 --class image=wechat-message:0.3 --class other=default:1 \
  --source "1998 World Cup Web Site Access Logs (M. Arlitt and T. Jin, Internet Traffic Archive; \
free to use and redistribute with attribution): wc_day6_1 (1 May 1998, Paris time), \
the 200,000-request sample in amplab/datascience-sp14 lab2/data/wc_day6_1_sample.tar.bz2." \
  --out "$out/worldcup98_web.csv.gz"
for scenario in flash_burst quiet_night crawler_backlog all_busy; do
  run trace generate "$scenario" --out "$out/$scenario.csv.gz"
done
cp "$out/flash_burst.csv.gz" autoscaler/data/traces/flash_burst.csv.gz
