#!/usr/bin/env bash
# Every route of pytgi with curl, as in TGI's docs. Start the server first (`make run`);
# PYTGI_URL points the script at another one (default http://127.0.0.1:8080).
# Each call fails the script on an HTTP error (--fail-with-body prints the error body).
set -euo pipefail

URL="${PYTGI_URL:-http://127.0.0.1:8080}"
CURL=(curl --silent --show-error --fail-with-body --max-time 60 -H 'Content-Type: application/json')

section() { printf '\n== %s\n' "$1"; }
call() { "${CURL[@]}" "$@"; echo; }  # JSON answers end without a newline

section "POST /generate"
call "$URL/generate" -X POST \
    -d '{"inputs":"Python lists are","parameters":{"max_new_tokens":20}}'

section "POST /generate (details, sampling with a seed)"
call "$URL/generate" -X POST \
    -d '{"inputs":"A tuple is","parameters":{"max_new_tokens":5,"details":true,"do_sample":true,"seed":42}}'

section "POST /generate_stream (server-sent events)"
call -N "$URL/generate_stream" -X POST \
    -d '{"inputs":"A dictionary maps","parameters":{"max_new_tokens":10}}'

section "POST / (TGI's compat route: a JSON list, or SSE with \"stream\": true)"
call "$URL/" -X POST \
    -d '{"inputs":"The with statement","parameters":{"max_new_tokens":10}}'

section "POST /tokenize"
call "$URL/tokenize" -X POST -d '{"inputs":"Python lists are"}'

section "GET /info"
call "$URL/info"

section "GET /health (200 and an empty body when ready)"
"${CURL[@]}" -o /dev/null -w '%{http_code}\n' "$URL/health"

section "GET /metrics (Prometheus text; here only tgi_request_count)"
"${CURL[@]}" "$URL/metrics" | grep '^tgi_request_count' || true

section "POST /v1/chat/completions"
call "$URL/v1/chat/completions" -X POST \
    -d '{"model":"tgi","messages":[{"role":"user","content":"What is a list?"}],"max_tokens":20,"temperature":0}'

section "POST /v1/chat/completions (stream, ends with data: [DONE])"
call -N "$URL/v1/chat/completions" -X POST \
    -d '{"model":"tgi","messages":[{"role":"user","content":"What is a set?"}],"max_tokens":10,"stream":true}'

section "POST /v1/completions"
call "$URL/v1/completions" -X POST \
    -d '{"model":"tgi","prompt":"Python lists are","max_tokens":10,"temperature":0}'

section "GET /v1/models"
call "$URL/v1/models"

section "POST /chat_tokenize (the templated prompt and its tokens)"
call "$URL/chat_tokenize" -X POST \
    -d '{"model":"tgi","messages":[{"role":"user","content":"Hi"}]}'
