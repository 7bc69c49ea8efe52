#!/bin/sh
# bench/engine/build_llama_cpp.sh DIR: builds llama.cpp's llama-bench, llama-quantize and
# llama-completion into DIR/bin from the source node-llama-cpp 3.21.1 ships
# (llama/gitRelease.bundle: llama.cpp v0.4.0, commit 80fb11a), CPU only, Release, native CPU
# flags, static. For bench.sh, which skips it when DIR/bin already has the binaries (about 25
# minutes at -j2). DIR must be outside the repository.
set -eu
DIR=$1
JOBS=${JOBS:-2}
mkdir -p "$DIR/bin"
cd "$DIR"
[ -f node-llama-cpp-3.21.1.tgz ] || npm pack node-llama-cpp@3.21.1 >/dev/null
[ -d package/llama ] || tar xzf node-llama-cpp-3.21.1.tgz
[ -d src/.git ] || git clone -q package/llama/gitRelease.bundle src
cmake -S src -B src/build -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF >build-configure.log
for t in llama-bench llama-quantize llama-completion; do
    cmake --build src/build --config Release -j"$JOBS" --target "$t" >>build.log 2>&1
    cp "src/build/bin/$t" bin/
done
