#!/usr/bin/env bash
# Polyphony's build, serve and test driver. See README.md.
#
#   ./build.sh serve   build everything, serve the page at http://localhost:${PORT:-8000}/www/
#   ./build.sh test    run every test (native cargo tests, then the page in headless Chromium)
#   ./build.sh wasm    build the wasm package into pkg/ only
#   ./build.sh dist [DIR]  the page as a static site in DIR (default dist/), see README.md
#   ./build.sh serve-dist [DIR]  build it, serve it as a static host would
#   ./build.sh corpus  fetch the Bach chorales (music21 wheel from PyPI)
#   ./build.sh bench-page  our CPU wasm step next to TensorFlow.js's wasm backend, and the
#                          first note's time in fresh browser contexts (not a test)
#   ./build.sh fuzz [SECONDS [TARGET...]]  fuzz every reader and the generate request (not a test)
#
# It installs what is missing (Debian packages, wasm-bindgen-cli, npm packages)
# and says so. Build caches live outside the clone:
#   CARGO_TARGET_DIR  native builds   (default ~/.cache/polyphony/target)
#   WASM_TARGET_DIR   the wasm build  (default ~/.cache/polyphony/target-wasm)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=$(pwd)

CACHE_DIR="$HOME/.cache/polyphony"
NATIVE_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE_DIR/target}"
WASM_TARGET_DIR="${WASM_TARGET_DIR:-$CACHE_DIR/target-wasm}"
PORT="${PORT:-8000}"
CHROMIUM=/usr/bin/chromium
WASM_TRIPLE=wasm32-unknown-unknown
WASM_PROFILE="wasm-release"
DEBIAN_RUST_PKGS=(rustc-web cargo-web rust-web-src rust-web-llvm lld-22)
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

# rustup and `cargo install` put tools here; a non-login shell may lack it.
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
if [ -d "$CARGO_BIN" ] && [[ ":$PATH:" != *":$CARGO_BIN:"* ]]; then PATH="$CARGO_BIN:$PATH"; fi

say() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf '\nbuild.sh: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------
# Installing what is missing
# ---------------------------------------------------------------------------

APT_PKGS=()    # Debian packages to install
APT_WHY=()     # one line per missing thing
WASM_MODE=""   # rustup | debian

need_apt() { # <why> <package>...
  APT_WHY+=("$1")
  shift
  local p q
  for p in "$@"; do
    for q in "${APT_PKGS[@]:-}"; do [ "$q" = "$p" ] && continue 2; done
    APT_PKGS+=("$p")
  done
}

apt_install_missing() {
  [ "${#APT_PKGS[@]}" -eq 0 ] && return 0
  say "Installing Debian packages: ${APT_PKGS[*]}"
  local why
  for why in "${APT_WHY[@]}"; do info "missing: $why"; done
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    die "not root (or no apt-get), so cannot install the above. Run as root:
    apt-get update && apt-get install -y ${APT_PKGS[*]}"
  fi
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y "${APT_PKGS[@]}"; }; then
    die "apt-get failed; still missing: ${APT_WHY[*]}
    (install by hand: apt-get install -y ${APT_PKGS[*]})"
  fi
  APT_PKGS=()
  APT_WHY=()
}

# The cargo for native builds: rustup's (or whatever is on PATH), else Debian's.
native_cargo() { command -v cargo || echo /usr/bin/cargo; }

# The wasm toolchain: rustup's when it has the wasm32 std, else Debian's
# rustc-web (whose std is built from source with -Zbuild-std).
check_wasm_toolchain() {
  if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx "$WASM_TRIPLE"; then
    WASM_MODE=rustup
    return 0
  fi
  WASM_MODE=debian
  local missing=()
  if [ ! -x /usr/bin/rustc ]; then
    missing+=("/usr/bin/rustc (Debian rustc-web: rustup has no $WASM_TRIPLE std)")
  elif ! /usr/bin/rustc --version | awk '{split($2, v, "."); exit !(v[1] > 1 || v[2] >= 85)}'; then
    missing+=("a Rust >= 1.85 at /usr/bin/rustc (edition 2024); found: $(/usr/bin/rustc --version)")
  fi
  [ -x /usr/bin/cargo ] || missing+=("/usr/bin/cargo (Debian cargo-web, the cargo matching /usr/bin/rustc)")
  [ -f /usr/lib/rustlib/src/rust/library/std/Cargo.toml ] ||
    missing+=("/usr/lib/rustlib/src/rust (Debian rust-web-src: std sources for -Zbuild-std)")
  [ -e /usr/bin/rust-lld ] || missing+=("/usr/bin/rust-lld (Debian rust-web-llvm + lld-22: the wasm linker)")
  local m
  for m in "${missing[@]:-}"; do [ -n "$m" ] && need_apt "$m" "${DEBIAN_RUST_PKGS[@]}"; done
  return 0
}

check_node() {
  { command -v node >/dev/null && command -v npm >/dev/null; } ||
    die "node and npm are needed (node >= 20; Debian 12's nodejs is too old for playwright-core). Install Node.js 20+."
  node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' ||
    die "node >= 20 is needed, found $(node --version)"
}

check_chromium() {
  [ -x "$CHROMIUM" ] || need_apt "$CHROMIUM (Debian chromium, driven headless by the browser tests)" chromium
}

# wasm-bindgen CLI at exactly the version of the wasm-bindgen crate in Cargo.lock.
WASM_BINDGEN=""
ensure_wasm_bindgen() {
  local want have=""
  want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/^version = "|"$/, ""); print; exit }' Cargo.lock)
  [ -n "$want" ] || die "no wasm-bindgen crate in Cargo.lock"
  WASM_BINDGEN=$(command -v wasm-bindgen || true)
  if [ -n "$WASM_BINDGEN" ]; then
    have=$("$WASM_BINDGEN" --version 2>/dev/null | awk '{print $2}' || true)
  fi
  if [ "$have" != "$want" ]; then
    say "Installing wasm-bindgen-cli $want (found: ${have:-none}; it must match the wasm-bindgen crate in Cargo.lock)"
    info "cargo install wasm-bindgen-cli --version $want   (a native build: several minutes)"
    # Not --locked: the CLI's lockfile pins crates this registry mirror may lack.
    "$(native_cargo)" install wasm-bindgen-cli --version "$want" ||
      die "cargo install wasm-bindgen-cli --version $want failed"
    WASM_BINDGEN="$CARGO_BIN/wasm-bindgen"
    have=$("$WASM_BINDGEN" --version 2>/dev/null | awk '{print $2}' || true)
    [ "$have" = "$want" ] || die "$WASM_BINDGEN is version $have, need $want"
  fi
}

# `npm ci` in DIR when PACKAGE is missing there or the lockfile is newer
# than what was installed: npm_ci_if_stale <dir> <package> <what, for the log> [npm flags].
npm_ci_if_stale() {
  local dir=$1 package=$2 what=$3
  shift 3
  if [ ! -f "$dir/node_modules/$package/package.json" ] ||
     [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    say "Installing npm packages in $dir (npm ci: $what)"
    (cd "$dir" && npm ci --no-audit --no-fund "$@") || die "npm ci in $dir failed"
  fi
}

ensure_browser_test_deps() {
  npm_ci_if_stale tests/browser playwright-core "playwright-core; it downloads no browser"
}

# The page's one npm library (OpenSheetMusicDisplay, the score view), served
# from www/node_modules. --ignore-scripts: only its prebuilt browser file is used.
ensure_page_deps() {
  npm_ci_if_stale www opensheetmusicdisplay "opensheetmusicdisplay, for the score view" --ignore-scripts
}

# esbuild, which ./build.sh dist uses to join the page's modules into one
# file. --ignore-scripts: its install script only checks the prebuilt binary
# that the platform package (an optional dependency) brings.
ensure_tool_deps() {
  npm_ci_if_stale tools esbuild "esbuild, for ./build.sh dist" --ignore-scripts
}

# Everything a subcommand needs, installed up front (one apt-get run).
prepare() { # <wasm> [browser] [node]
  local what
  for what in "$@"; do
    case "$what" in
      wasm) check_wasm_toolchain ;;
      browser) check_chromium; check_node ;;
      node) check_node ;;
    esac
  done
  apt_install_missing
  for what in "$@"; do
    case "$what" in
      wasm)
        check_wasm_toolchain
        [ "${#APT_PKGS[@]}" -eq 0 ] || die "still missing after apt-get: ${APT_WHY[*]}"
        ensure_wasm_bindgen
        ;;
      browser)
        [ -x "$CHROMIUM" ] || die "$CHROMIUM is still missing"
        ensure_browser_test_deps
        ensure_page_deps
        ensure_tool_deps # the offline test builds dist folders
        ;;
      node) ensure_page_deps; ensure_tool_deps ;;
    esac
  done
}

# The music21 Bach chorales (410 MusicXML files) from the PyPI wheel, for the
# corpus tests and for training. The wheel is cached; nothing else downloads data.
MUSIC21_VERSION=10.5.1
BACH_DIR="${POLYPHONY_BACH_DIR:-$CACHE_DIR/bach}"
export POLYPHONY_BACH_DIR="$BACH_DIR"
ensure_corpus() {
  [ -f "$BACH_DIR/bwv66.6.mxl" ] && return 0
  local wheels="$CACHE_DIR/wheels"
  local wheel="$wheels/music21-$MUSIC21_VERSION-py3-none-any.whl"
  if [ ! -f "$wheel" ]; then
    say "Fetching the Bach chorales: pip download music21==$MUSIC21_VERSION (the wheel holds music21/corpus/bach/)"
    command -v python3 >/dev/null || die "python3 (with pip) is needed to fetch the corpus wheel from PyPI"
    python3 -m pip download --quiet --no-deps "music21==$MUSIC21_VERSION" -d "$wheels" ||
      die "pip download music21==$MUSIC21_VERSION failed"
  fi
  info "extracting music21/corpus/bach/*.mxl|*.xml into $BACH_DIR"
  python3 - "$wheel" "$BACH_DIR" <<'PY'
import os, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = name.rsplit("/", 1)[-1]
        if name == "music21/corpus/bach/" + base and base.endswith((".mxl", ".xml")):
            with open(os.path.join(out, base), "wb") as f:
                f.write(z.read(name))
PY
  info "$(ls "$BACH_DIR" | wc -l) files"
}

# ---------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------

# SIMD128 (every current browser has it): the fused step's wasm kernel
# (src/fused.rs) uses it, and with -Zbuild-std the std is built with it too.
# Set only on the wasm cargo commands below, never exported to native builds.
WASM_RUSTFLAGS="${WASM_RUSTFLAGS:--C target-feature=+simd128}"

# The page's two packages, from one crate: pkg/ is the fused CPU step alone
# (no burn: the page's first download), pkg-webgpu/ adds burn's WebGPU
# runtime, fetched after the page is ready when the browser has WebGPU.
build_wasm() {
  build_wasm_package pkg --no-default-features
  build_wasm_package pkg-webgpu --features webgpu
}

build_wasm_package() { # <out dir> <cargo feature flags>...
  local out=$1
  shift
  say "Building the wasm package $out/ ($*) with $WASM_MODE's toolchain, target dir $WASM_TARGET_DIR"
  local start=$SECONDS
  if [ "$WASM_MODE" = rustup ]; then
    CARGO_TARGET_DIR="$WASM_TARGET_DIR" RUSTFLAGS="$WASM_RUSTFLAGS" \
      cargo build --profile "$WASM_PROFILE" --lib --target "$WASM_TRIPLE" "$@"
  else
    # Debian's rustc has no prebuilt wasm32 std: build it (RUSTC_BOOTSTRAP unlocks -Z).
    CARGO_TARGET_DIR="$WASM_TARGET_DIR" RUSTFLAGS="$WASM_RUSTFLAGS" RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc \
      /usr/bin/cargo build --profile "$WASM_PROFILE" --lib --target "$WASM_TRIPLE" \
      -Zbuild-std=std,panic_abort "$@"
  fi
  local wasm="$WASM_TARGET_DIR/$WASM_TRIPLE/$WASM_PROFILE/polyphony.wasm"
  [ -f "$wasm" ] || die "cargo produced no $wasm"
  # wasm-ld wraps each export in a run of the static constructors unless the
  # code calls them itself (web::start does): slow calls, see src/web.rs.
  if grep -q 'command_export' "$wasm"; then
    die "$wasm: wasm-ld wrapped the exports in __wasm_call_ctors (.command_export); web::start must call __wasm_call_ctors"
  fi
  # No wasm-opt: Debian's (binaryen 108) breaks wasm-bindgen's output.
  rm -rf "$out"
  "$WASM_BINDGEN" --target web --remove-name-section --remove-producers-section --out-dir "$out" "$wasm"
  info "$out/polyphony_bg.wasm: $(wc -c <"$out/polyphony_bg.wasm") bytes ($(gzip -9c "$out/polyphony_bg.wasm" | wc -c) gzipped); took $((SECONDS - start)) s"
}

build_native() {
  say "Building the native binary (cargo build --release --bin polyphony), target dir $NATIVE_TARGET_DIR"
  CARGO_TARGET_DIR="$NATIVE_TARGET_DIR" "$(native_cargo)" build --release --bin polyphony
  info "binary: $NATIVE_TARGET_DIR/release/polyphony"
}

# ---------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------

cmd_corpus() {
  ensure_corpus
  info "corpus ready in $BACH_DIR"
}

# The pretrained model's recipe: corpus -> dataset (full reading, pieces
# sharing a tune on one side, every piece moved to C major or A minor) ->
# training warm-started from the shipped bundle (resumes after any
# interruption, stops when the eval loss has not improved for PATIENCE (10)
# evaluations) -> bundle in assets/. Rerun the same command to resume. The
# network reads the context features (context_inputs=true), as the shipped
# one does; its earlier stages (2508 steps from scratch on the original's
# reading, then fine-tuning without the context, then with it but without the
# rules' penalty) are in assets/MODEL_CARD.md. rules_penalty=1 adds an
# unlikelihood term on next events the style's rules forbid (CPU trainer).
BACH_DATA="$CACHE_DIR/data-bach-key"
BACH_RUN="${RUN_DIR:-$CACHE_DIR/runs/bach-rules}"
cmd_bundle_bach() {
  build_native
  bundle_bach "$NATIVE_TARGET_DIR/release/polyphony" "$BACH_DATA" "$BACH_RUN"
}

cmd_train_bach() {
  ensure_corpus
  build_native
  local bin="$NATIVE_TARGET_DIR/release/polyphony"
  if [ ! -f "$BACH_DATA/training_poly_tracks.polyds" ]; then
    say "Creating the dataset in $BACH_DATA"
    "$bin" create-dataset --input "$BACH_DIR" --output_dir "$BACH_DATA" --seed 0 \
      --reading full --tunes_together --key_normalize
  fi
  say "Training in $BACH_RUN (Ctrl-C saves a checkpoint; rerun to resume)"
  # The warm start applies to a new run only; a run with a checkpoint resumes.
  "$bin" train --run_dir "$BACH_RUN" \
    --sequence_example_file "$BACH_DATA/training_poly_tracks.polyds" \
    --eval_sequence_example_file "$BACH_DATA/eval_poly_tracks.polyds" \
    --warm_start_bundle_file assets/bach-chorales.bundle --hparams key_normalized=true,context_inputs=true,rules_penalty=1 \
    --eval_every 20 --log_every 2 --checkpoint_secs 300 --patience "${PATIENCE:-10}"
  bundle_bach "$bin" "$BACH_DATA" "$BACH_RUN"
}

# The run's best checkpoint as assets/bach-chorales.bundle, stored as the
# smallest of int8, f16 and f32 whose eval loss is within 0.5% of f32's.
bundle_bach() {
  local bin=$1 data=$2 run=$3
  say "Writing assets/bach-chorales.bundle: the smallest of int8, f16, f32 whose eval loss is within 0.5% of f32's"
  local description="Polyphony RNN (3x256 LSTM, reading the context, rules penalty) trained on the music21 Bach chorales, in C major or A minor"
  local precision flag loss32 loss shipped=f32
  for precision in f32 f16 int8; do
    case $precision in f16) flag=--half ;; int8) flag=--int8 ;; *) flag= ;; esac
    "$bin" bundle --run_dir "$run" --output "$run/bach-chorales.$precision.bundle" \
      --bundle_description "$description" $flag
    # To a file, then its head: `| tee | head` can die of SIGPIPE under pipefail.
    "$bin" evaluate --bundle_file "$run/bach-chorales.$precision.bundle" \
      --sequence_example_file "$data/eval_poly_tracks.polyds" > "$run/eval.$precision.txt"
    head -n 2 "$run/eval.$precision.txt"
    loss=$(awk '/^loss /{print $2}' "$run/eval.$precision.txt")
    [ "$precision" = f32 ] && loss32=$loss
    if awk -v a="$loss32" -v b="$loss" 'BEGIN { exit !(b <= a * 1.005) }'; then shipped=$precision; fi
    info "eval loss $precision: $loss"
  done
  cp "$run/bach-chorales.$shipped.bundle" assets/bach-chorales.bundle
  info "shipped $shipped as assets/bach-chorales.bundle (f32's eval loss $loss32)"
  # The binary carries the default bundle: rebuild it, or `polyphony generate`
  # without --bundle_file would still use the old one.
  build_native
}

cmd_wasm() {
  prepare wasm
  build_wasm
}

# The wasm packages, rebuilt only when a source is newer than one of them:
# dist copies them, and rebuilding pkg/ under a running page or test would
# pull it from under them.
ensure_wasm_fresh() {
  local out
  for out in pkg pkg-webgpu; do
    if [ ! -f "$out/polyphony.js" ] || [ ! -f "$out/polyphony_bg.wasm" ] ||
       [ -n "$(find src Cargo.toml Cargo.lock -newer "$out/polyphony_bg.wasm" -print -quit)" ]; then
      info "$out/ is missing or older than src/: building the wasm packages"
      prepare wasm
      build_wasm
      return
    fi
  done
  info "pkg/ and pkg-webgpu/ are up to date: copied as they are"
}

# The page as a static site (tools/dist.mjs): hashed names, .gz and .br beside
# each file, the service worker's file list; prints the download sizes.
cmd_dist() {
  local out=${1:-dist}
  prepare node
  say "Writing the page as a static site to $out/ (tools/dist.mjs)"
  ensure_wasm_fresh
  node tools/dist.mjs --out "$out"
}

cmd_serve_dist() {
  local out=${1:-dist}
  cmd_dist "$out"
  say "Serving $out/ on 127.0.0.1:$PORT as a static host would (hashed names immutable; Ctrl-C to stop)"
  info "Open http://localhost:$PORT/"
  exec node tests/browser/static-server.mjs --root "$out" --host 127.0.0.1 --port "$PORT" --dist
}

cmd_serve() {
  prepare wasm node
  build_wasm
  build_native
  say "Serving $ROOT on 127.0.0.1:$PORT (Ctrl-C to stop)"
  info "Open http://localhost:$PORT/www/"
  exec node tests/browser/static-server.mjs --root "$ROOT" --host 127.0.0.1 --port "$PORT"
}

STAGE_RESULTS=()
FAILED=0
run_stage() { # <name> <command>...: runs it with errexit, records PASS/FAIL
  local name=$1
  shift
  say "Test stage: $name"
  local start=$SECONDS rc=0
  set +e
  (set -e; "$@")
  rc=$?
  set -e
  local took=$((SECONDS - start))
  if [ "$rc" -eq 0 ]; then
    STAGE_RESULTS+=("PASS  $name (${took} s)")
  else
    STAGE_RESULTS+=("FAIL  $name (exit $rc, ${took} s)")
    FAILED=$((FAILED + 1))
  fi
  return 0
}

native_tests() { CARGO_TARGET_DIR="$NATIVE_TARGET_DIR" "$(native_cargo)" test --release --no-fail-fast; }

# A Python environment with music21 (from the corpus wheel) and mido, for
# reading what we write with the field's own tools.
VENV="$CACHE_DIR/venv"
ensure_venv() {
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import music21, mido' 2>/dev/null; then
    say "Making a Python environment in $VENV (music21 $MUSIC21_VERSION and mido, from PyPI) for the cross-checks"
    python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$VENV/bin/python" -m pip install --quiet "$CACHE_DIR/wheels/music21-$MUSIC21_VERSION-py3-none-any.whl" mido ||
      die "pip install music21 mido failed"
  fi
}

music21_check() {
  ensure_venv
  CARGO_TARGET_DIR="$NATIVE_TARGET_DIR" "$(native_cargo)" build --release --bin polyphony
  local work
  work=$(mktemp -d)
  "$VENV/bin/python" tests/music21/check_outputs.py "$NATIVE_TARGET_DIR/release/polyphony" "$work"
  rm -rf "$work"
}
# page.test.mjs on the dev tree (it checks the page's engine against the
# native binary), then offline.test.mjs, which builds two dist folders of its
# own (copies of pkg/: no wasm rebuild) and tests them.
browser_tests() {
  local rc=0
  POLYPHONY_BIN="$NATIVE_TARGET_DIR/release/polyphony" node tests/browser/page.test.mjs || rc=1
  node tests/browser/offline.test.mjs || rc=1
  return "$rc"
}

cmd_test() {
  local start=$SECONDS
  prepare wasm browser
  ensure_corpus
  run_stage "native tests (cargo test --release --no-fail-fast)" native_tests
  run_stage "music21 reads our MusicXML (tests/music21)" music21_check
  run_stage "wasm packages (pkg/, pkg-webgpu/)" build_wasm
  if [ -f pkg/polyphony.js ] && [ -f pkg-webgpu/polyphony.js ] && [[ "${STAGE_RESULTS[-1]}" == PASS* ]]; then
    run_stage "browser tests (tests/browser, headless Chromium)" browser_tests
  else
    STAGE_RESULTS+=("SKIP  browser tests (no wasm package)")
    FAILED=$((FAILED + 1))
  fi
  say "Summary ($((SECONDS - start)) s)"
  local line
  for line in "${STAGE_RESULTS[@]}"; do info "$line"; done
  if [ "$FAILED" -eq 0 ]; then
    printf '\nbuild.sh test: ALL PASSED\n'
  else
    printf '\nbuild.sh test: FAILED (%d of %d stages did not pass)\n' "$FAILED" "${#STAGE_RESULTS[@]}"
    exit 1
  fi
}

# Our CPU wasm LSTM step next to TensorFlow.js 4.22's wasm backend running the
# same network step, in one headless Chromium (tests/browser/bench-vs-tfjs.mjs
# prints a markdown table). A benchmark, not a test: not part of cmd_test.
cmd_bench_page() { # [--rounds N] [--steps N]
  prepare wasm browser
  if [ ! -f pkg/polyphony.js ] || [ ! -f pkg/polyphony_bg.wasm ]; then build_wasm_package pkg --no-default-features; fi
  npm_ci_if_stale tests/browser @tensorflow/tfjs-backend-wasm "TensorFlow.js, the benchmark's yardstick"
  node tests/browser/bench-vs-tfjs.mjs "$@"
  node tests/browser/first-note.mjs
}

# Fuzzing (fuzz/README.md): every reader and the generate request (or the
# TARGETs named) under libFuzzer, SECONDS each, FUZZ_JOBS (2) targets at a
# time. Not part of cmd_test. Crashes land in fuzz/artifacts/<target>/; prints a table.
FUZZ_TARGETS=(midi musicxml mxl bundle dataset checkpoint primer request)
FUZZ_DIR="$CACHE_DIR/fuzz"
cmd_fuzz() { # [SECONDS [TARGET...]]
  local seconds=${1:-60} targets=("${@:2}") jobs_at_once=${FUZZ_JOBS:-2}
  [[ "$seconds" =~ ^[0-9]+$ ]] || die "fuzz: SECONDS must be a whole number, got '$seconds'"
  [ "${#targets[@]}" -gt 0 ] || targets=("${FUZZ_TARGETS[@]}")
  local t
  for t in "${targets[@]}"; do
    [[ " ${FUZZ_TARGETS[*]} " == *" $t "* ]] || die "fuzz: no target '$t' (targets: ${FUZZ_TARGETS[*]})"
  done
  if ! "$(native_cargo)" fuzz --version >/dev/null 2>&1; then
    say "Installing cargo-fuzz (cargo install cargo-fuzz: a native build, a few minutes)"
    "$(native_cargo)" install cargo-fuzz || die "cargo install cargo-fuzz failed"
  fi
  build_native
  fuzz_seed_corpora "$NATIVE_TARGET_DIR/release/polyphony"
  say "Building the fuzz targets (cargo fuzz build, no sanitizer: safe Rust; target dir $CACHE_DIR/target-fuzz)"
  # RUSTC_BOOTSTRAP: cargo-fuzz passes nightly-only flags; the stable compiler accepts them so.
  RUSTC_BOOTSTRAP=1 "$(native_cargo)" fuzz build -s none --target-dir "$CACHE_DIR/target-fuzz"
  local bin_dir="$CACHE_DIR/target-fuzz/x86_64-unknown-linux-gnu/release" target jobs=()
  say "Fuzzing each target for $seconds s (10 s timeout per input, 2 GB memory limit)"
  for target in "${targets[@]}"; do
    mkdir -p "fuzz/artifacts/$target"
    "$bin_dir/$target" "$FUZZ_DIR/corpus/$target" -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=2048 -malloc_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="fuzz/artifacts/$target/" >"$FUZZ_DIR/$target.log" 2>&1 &
    jobs+=($!)
    if [ "${#jobs[@]}" -ge "$jobs_at_once" ]; then wait "${jobs[0]}" || true; jobs=("${jobs[@]:1}"); fi
  done
  wait || true
  fuzz_table "${targets[@]}"
}

# Each target's seeds: the golden files, fuzz/seeds/ (primers, requests), and
# small datasets, checkpoints and bundles made here with the binary.
fuzz_seed_corpora() { # <polyphony binary>
  local bin=$1 corpus="$FUZZ_DIR/corpus" made="$FUZZ_DIR/made" t f name
  for t in "${FUZZ_TARGETS[@]}"; do mkdir -p "$corpus/$t"; done
  local piece
  for piece in tests/data/golden/*/; do
    name=$(basename "$piece")
    for f in "$piece"*.mid; do [ -f "$f" ] && cp "$f" "$corpus/midi/$name-$(basename "$f")"; done
    [ -f "$piece/source.xml" ] && cp "$piece/source.xml" "$corpus/musicxml/$name.xml"
    if [ -f "$piece/source.mxl" ]; then
      cp "$piece/source.mxl" "$corpus/mxl/$name.mxl"
      python3 -c 'import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
n = [m for m in z.namelist() if m.endswith(".xml") and not m.startswith("META-INF")][0]
open(sys.argv[2], "wb").write(z.read(n))' "$piece/source.mxl" "$corpus/musicxml/$name.xml"
    fi
  done
  cp fuzz/seeds/primer/* "$corpus/primer/"
  cp fuzz/seeds/request/* "$corpus/request/"
  if [ ! -f "$made/one-layer.bundle" ]; then
    say "Making small datasets, checkpoints and bundles to seed the fuzz corpora"
    rm -rf "$made" && mkdir -p "$made"
    "$bin" create-dataset --input tests/data/golden/bwv66.6.mxl tests/data/golden/bwv10.7.mxl \
      --output_dir "$made/ds" --eval_ratio 0.5 >/dev/null
    local hparams
    for name in one-layer context; do
      hparams="rnn_layer_sizes=[8],batch_size=2"
      [ "$name" = context ] && hparams="$hparams,context_inputs=true"
      "$bin" train --run_dir "$made/$name" --sequence_example_file "$made/ds/training_poly_tracks.polyds" \
        --num_training_steps 1 --hparams "$hparams" >/dev/null
      "$bin" bundle --run_dir "$made/$name" -o "$made/$name.bundle" >/dev/null
      cp "$made/$name/checkpoint.safetensors" "$made/$name.safetensors"
    done
    "$bin" bundle --bundle_file "$made/one-layer.bundle" --half -o "$made/one-layer-half.bundle" >/dev/null
    "$bin" bundle --bundle_file "$made/one-layer.bundle" --int8 -o "$made/one-layer-int8.bundle" >/dev/null
  fi
  cp "$made"/*.bundle "$corpus/bundle/"
  cp "$made"/*.safetensors "$corpus/checkpoint/"
  cp "$made"/ds/*.polyds "$corpus/dataset/"
}

# The closing table: executions, crashes (files in fuzz/artifacts/<target>/),
# timeouts and peak memory, from libFuzzer's final stats.
fuzz_table() { # <target>...
  local target log runs rss secs crashes timeouts
  printf '\n| target | executions | seconds | crashes | timeouts | peak RSS (MB) |\n|---|---|---|---|---|---|\n'
  for target in "$@"; do
    log="$FUZZ_DIR/$target.log"
    runs=$(awk '/stat::number_of_executed_units/ {print $NF}' "$log")
    rss=$(awk '/stat::peak_rss_mb/ {print $NF}' "$log")
    secs=$(awk '/^Done [0-9]+ runs in/ {print $5}' "$log")
    crashes=$(find "fuzz/artifacts/$target" -name 'crash-*' -o -name 'oom-*' | wc -l)
    timeouts=$(find "fuzz/artifacts/$target" -name 'timeout-*' | wc -l)
    printf '| %s | %s | %s | %s | %s | %s |\n' "$target" "${runs:-?}" "${secs:-?}" "$crashes" "$timeouts" "${rss:-?}"
  done
  printf '\nlogs: %s/<target>.log; inputs that failed: fuzz/artifacts/<target>/\n' "$FUZZ_DIR"
}

usage() {
  cat <<EOF
Usage: ./build.sh <command>

  serve   build the wasm package and the native binary, then serve the page
          at http://localhost:\${PORT:-8000}/www/ until interrupted
  test    run every test: cargo test --release, then build the wasm package
          and run the headless-browser tests in tests/browser/
  wasm    build the wasm packages into pkg/ (CPU) and pkg-webgpu/ only
  dist [DIR]  the page as a static site in DIR (default dist/): content-hashed
          names, .gz and .br beside each file, service worker and manifest;
          prints the download sizes (wasm rebuilt only if older than src/)
  serve-dist [DIR]  dist, then serve it at http://localhost:\${PORT:-8000}/ with a
          static host's headers (immutable hashed names, COOP/COEP)
  corpus  fetch the music21 Bach chorales (PyPI wheel) into ~/.cache/polyphony/bach
  train-bach  the pretrained model's recipe: key-normalised dataset, fine-tuning from
          the shipped bundle (resumable, stops on eval loss), bundle into assets/
  bundle-bach the last step of train-bach alone: the run's best checkpoint into
          assets/bach-chorales.bundle (int8, else f16, if within 0.5% of f32's eval loss)
  bench-page [--rounds N] [--steps N]  a benchmark, not a test: the page's CPU wasm
          step (?bench) next to TensorFlow.js's wasm backend on the same 3x256 LSTM
          step, in headless Chromium; prints a markdown table (tests/browser/bench-vs-tfjs.mjs)
  fuzz [SECONDS [TARGET...]]  every reader and the generate request (or the TARGETs:
          midi musicxml mxl bundle dataset checkpoint primer request) under cargo-fuzz
          (libFuzzer), SECONDS each (default 60), FUZZ_JOBS (2) at a time; crashes in
          fuzz/artifacts/; prints a table of executions, crashes, timeouts, peak memory

Installs what is missing (Debian rustc-web & co, chromium, wasm-bindgen-cli,
npm playwright-core) and says so. Caches: CARGO_TARGET_DIR (default
~/.cache/polyphony/target), WASM_TARGET_DIR (default ~/.cache/polyphony/target-wasm).
EOF
}

case "${1:-}" in
  serve) cmd_serve ;;
  test) cmd_test ;;
  wasm) cmd_wasm ;;
  dist) cmd_dist "${2:-}" ;;
  serve-dist) cmd_serve_dist "${2:-}" ;;
  corpus) cmd_corpus ;;
  train-bach) cmd_train_bach ;;
  bundle-bach) cmd_bundle_bach ;;
  bench-page) shift; cmd_bench_page "$@" ;;
  fuzz) shift; cmd_fuzz "$@" ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    [ -n "${1:-}" ] && printf '\nbuild.sh: unknown command: %s\n' "$1" >&2
    exit 2
    ;;
esac
