-- wrk script for bench/gateway.sh: every request is the same small, non-streaming chat
-- completion, as an OpenAI client would send it. "model": "auto" lets hybridllm's routes pick
-- the backend (the benchmark config has one route to the one fake upstream).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"auto","messages":[{"role":"user","content":"Classify: the movie was great"}]}'
